//! Secrets Manager adapter. Names are prefixed with the hub's secret prefix
//! (the IAM policy grants access to that prefix only). A write is a new
//! version: Secrets Manager moves `AWSCURRENT` to it and the old one to
//! `AWSPREVIOUS`.

use super::sdk_err;
use crate::ids::SecretName;
use crate::ports::{SecretStore, SecretVersion, StoreError, StoreResult, secrets_not_found};
use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use secrecy::{ExposeSecret, SecretString};

/// Secrets in AWS Secrets Manager under one prefix.
#[derive(Debug, Clone)]
pub struct AwsSecrets {
    client: Client,
    prefix: String,
}

impl AwsSecrets {
    /// Secrets named `<prefix><name>`.
    pub fn new(client: Client, prefix: impl Into<String>) -> Self {
        AwsSecrets {
            client,
            prefix: prefix.into(),
        }
    }

    fn id(&self, name: &SecretName) -> String {
        format!("{}{}", self.prefix, name)
    }

    async fn get_stage(&self, name: &SecretName, stage: &str) -> StoreResult<Option<SecretString>> {
        let result = self
            .client
            .get_secret_value()
            .secret_id(self.id(name))
            .version_stage(stage)
            .send()
            .await;
        match result {
            Ok(out) => match out.secret_string {
                Some(v) => Ok(Some(SecretString::from(v))),
                None => Err(StoreError::corrupt(
                    format!("secret {name}"),
                    "it holds binary data, not a string",
                )),
            },
            Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(None),
            Err(e) => Err(sdk_err("secretsmanager", "get_secret_value")(e)),
        }
    }
}

#[async_trait]
impl SecretStore for AwsSecrets {
    async fn get(&self, name: &SecretName) -> StoreResult<SecretString> {
        self.get_stage(name, "AWSCURRENT")
            .await?
            .ok_or_else(|| secrets_not_found(name))
    }

    async fn get_previous(&self, name: &SecretName) -> StoreResult<Option<SecretString>> {
        self.get_stage(name, "AWSPREVIOUS").await
    }

    async fn put(&self, name: &SecretName, value: &SecretString) -> StoreResult<SecretVersion> {
        let id = self.id(name);
        for _ in 0..3 {
            let put = self
                .client
                .put_secret_value()
                .secret_id(&id)
                .secret_string(value.expose_secret())
                .client_request_token(uuid::Uuid::new_v4().to_string())
                .send()
                .await;
            match put {
                Ok(out) => return Ok(SecretVersion(out.version_id.unwrap_or_default())),
                Err(e) if e.code() == Some("ResourceNotFoundException") => {}
                Err(e) => return Err(sdk_err("secretsmanager", "put_secret_value")(e)),
            }
            let create = self
                .client
                .create_secret()
                .name(&id)
                .secret_string(value.expose_secret())
                .client_request_token(uuid::Uuid::new_v4().to_string())
                .send()
                .await;
            match create {
                Ok(out) => return Ok(SecretVersion(out.version_id.unwrap_or_default())),
                // Another writer created it first: put a new version on top.
                Err(e) if e.code() == Some("ResourceExistsException") => {}
                Err(e) => return Err(sdk_err("secretsmanager", "create_secret")(e)),
            }
        }
        Err(StoreError::Conflict(format!(
            "secret {name}: could not write a version"
        )))
    }
}
