//! The embedded backend's secrets: a JSON file (mode 0600) beside the
//! database, holding each secret's current and previous version. Never commit
//! it; the default location is under the ignored `.hub/` folder.

use crate::ids::SecretName;
use crate::ports::{SecretStore, SecretVersion, StoreError, StoreResult};
use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tokio::sync::Mutex;

#[derive(Default, Serialize, Deserialize)]
struct FileContents {
    #[serde(default)]
    secrets: BTreeMap<String, Versions>,
}

#[derive(Serialize, Deserialize)]
struct Versions {
    current: Version,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous: Option<Version>,
}

#[derive(Serialize, Deserialize)]
struct Version {
    version: String,
    value: String,
}

/// Secrets in a local JSON file.
#[derive(Debug)]
pub struct FileSecrets {
    path: PathBuf,
    lock: Mutex<()>,
}

fn io(op: &'static str) -> impl Fn(std::io::Error) -> StoreError {
    move |e| StoreError::backend("file", op, e)
}

impl FileSecrets {
    /// Secrets kept in the file at `path` (created on first write).
    pub fn new(path: impl AsRef<Path>) -> Self {
        FileSecrets {
            path: path.as_ref().to_path_buf(),
            lock: Mutex::new(()),
        }
    }

    async fn load(&self) -> StoreResult<FileContents> {
        match tokio::fs::read(&self.path).await {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                // The serde error names a position, never the file's contents.
                StoreError::corrupt(format!("secrets file {}", self.path.display()), e)
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FileContents::default()),
            Err(e) => Err(io("secrets.read")(e)),
        }
    }

    async fn save(&self, contents: &FileContents) -> StoreResult<()> {
        if let Some(dir) = self.path.parent()
            && !dir.as_os_str().is_empty()
        {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(io("secrets.write"))?;
        }
        let bytes = serde_json::to_vec_pretty(contents)
            .map_err(|e| StoreError::corrupt("secrets file", e))?;
        let tmp = self
            .path
            .with_extension(format!("tmp-{}", uuid::Uuid::new_v4()));
        write_private(&tmp, &bytes)
            .await
            .map_err(io("secrets.write"))?;
        tokio::fs::rename(&tmp, &self.path)
            .await
            .map_err(io("secrets.write"))
    }
}

#[cfg(unix)]
async fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let (path, bytes) = (path.to_path_buf(), bytes.to_vec());
    tokio::task::spawn_blocking(move || {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        f.write_all(&bytes)?;
        f.sync_all()
    })
    .await?
}

#[cfg(not(unix))]
async fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    tokio::fs::write(path, bytes).await
}

#[async_trait]
impl SecretStore for FileSecrets {
    async fn get(&self, name: &SecretName) -> StoreResult<SecretString> {
        let contents = self.load().await?;
        contents
            .secrets
            .get(name.as_str())
            .map(|v| SecretString::from(v.current.value.clone()))
            .ok_or_else(|| crate::ports::secrets_not_found(name))
    }

    async fn get_previous(&self, name: &SecretName) -> StoreResult<Option<SecretString>> {
        let contents = self.load().await?;
        Ok(contents
            .secrets
            .get(name.as_str())
            .and_then(|v| v.previous.as_ref())
            .map(|v| SecretString::from(v.value.clone())))
    }

    async fn put(&self, name: &SecretName, value: &SecretString) -> StoreResult<SecretVersion> {
        let _guard = self.lock.lock().await;
        let mut contents = self.load().await?;
        let version = uuid::Uuid::now_v7().to_string();
        let new = Version {
            version: version.clone(),
            value: value.expose_secret().to_string(),
        };
        let previous = contents.secrets.remove(name.as_str()).map(|v| v.current);
        contents.secrets.insert(
            name.to_string(),
            Versions {
                current: new,
                previous,
            },
        );
        self.save(&contents).await?;
        Ok(SecretVersion(version))
    }
}
