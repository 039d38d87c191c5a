//! Validation of what the back office submits, naming the bad field:
//! `Err((field, reason))`.

use crate::model::{Delivery, PurchaseOrder, TimeEntry};
use rust_decimal::Decimal;

/// A refused submission: which field, and why.
pub type Invalid = (String, String);

/// A purchase order: at least one line, positive quantities, costs not negative.
pub fn purchase_order(po: &PurchaseOrder) -> Result<(), Invalid> {
    if po.supplier_id.trim().is_empty() {
        return Err(("supplier_id".into(), "is empty".into()));
    }
    if po.lines.is_empty() {
        return Err(("lines".into(), "has no lines".into()));
    }
    for (i, l) in po.lines.iter().enumerate() {
        if l.item_id.trim().is_empty() {
            return Err((format!("lines[{i}].item_id"), "is empty".into()));
        }
        if l.quantity <= Decimal::ZERO {
            return Err((
                format!("lines[{i}].quantity"),
                format!("{} is not positive", l.quantity),
            ));
        }
        if l.unit_cost < Decimal::ZERO {
            return Err((
                format!("lines[{i}].unit_cost"),
                format!("{} is negative", l.unit_cost),
            ));
        }
    }
    Ok(())
}

/// A delivery: at least one line, received quantities not negative.
pub fn delivery(d: &Delivery) -> Result<(), Invalid> {
    if d.lines.is_empty() {
        return Err(("lines".into(), "has no lines".into()));
    }
    for (i, l) in d.lines.iter().enumerate() {
        if l.item_id.trim().is_empty() {
            return Err((format!("lines[{i}].item_id"), "is empty".into()));
        }
        if l.quantity_received < Decimal::ZERO {
            return Err((
                format!("lines[{i}].quantity_received"),
                "is negative".into(),
            ));
        }
        if l.unit_cost < Decimal::ZERO {
            return Err((format!("lines[{i}].unit_cost"), "is negative".into()));
        }
    }
    Ok(())
}

/// A time entry: a consistent shift (an open one is fine).
pub fn time_entry(e: &TimeEntry) -> Result<(), Invalid> {
    if e.employee_id.trim().is_empty() {
        return Err(("employee_id".into(), "is empty".into()));
    }
    super::hours::worked_hours(e)
        .map(|_| ())
        .map_err(|m| match m.split_once(": ") {
            Some((field, why)) => (field.to_string(), why.to_string()),
            None => ("time_entry".into(), m),
        })
}
