//! The development secret: outside production, with SQLite and no
//! `JWT_SECRET`, a random key kept in a git-ignored file beside the database.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;

use crate::config::{ConfigError, Secret, Settings, check_secret};
use gatehouse_core::db;

/// Development convenience: when `JWT_SECRET` is unset outside production, a
/// random secret kept in a git-ignored file beside the database, so restarts
/// keep browsers signed in. Returns the file's path when it was created now.
pub fn ensure_development_secret(settings: &mut Settings) -> Result<Option<PathBuf>, ConfigError> {
    if settings.sessions.jwt_secret.is_some()
        || settings.is_production()
        || settings.database.is_postgres()
    {
        return Ok(None);
    }
    let (secret, generated) = development_secret(&settings.database.database_url)?;
    settings.sessions.jwt_secret = Some(secret);
    Ok(generated)
}

fn development_secret(database_url: &str) -> Result<(Secret, Option<PathBuf>), ConfigError> {
    let path = secret_file_for(database_url);
    match std::fs::read_to_string(&path) {
        Ok(existing) => {
            return Ok((
                check_secret("JWT_SECRET", existing.trim().as_bytes().to_vec())?,
                None,
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(ConfigError::new(
                "JWT_SECRET",
                format!("is unset and {} cannot be read: {e}", path.display()),
            ));
        }
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let encoded = URL_SAFE_NO_PAD.encode(bytes);
    write_private(&path, encoded.as_bytes()).map_err(|e| {
        ConfigError::new(
            "JWT_SECRET",
            format!("is unset and {} cannot be written: {e}", path.display()),
        )
    })?;
    Ok((Secret::new(encoded.into_bytes()), Some(path)))
}

/// `gatehouse.db` keeps its development secret in `gatehouse.db.jwt-secret`.
pub fn secret_file_for(database_url: &str) -> PathBuf {
    let db = db::sqlite_path(database_url);
    let mut name = Path::new(db)
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "gatehouse.db".into());
    name.push(".jwt-secret");
    Path::new(db).with_file_name(name)
}

fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn development_secret_is_generated_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("dev.db");
        let db = db.to_str().unwrap();
        let vars = HashMap::from([("DATABASE_URL".to_owned(), db.to_owned())]);
        let mut first = Settings::from_vars(&vars).unwrap();
        let mut second = first.clone();

        assert!(ensure_development_secret(&mut first).unwrap().is_some());
        assert!(ensure_development_secret(&mut second).unwrap().is_none());

        assert!(first.sessions.jwt_secret.is_some());
        assert_eq!(first.sessions.jwt_secret, second.sessions.jwt_secret);
        assert!(secret_file_for(db).exists());
    }
}
