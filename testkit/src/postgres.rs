//! A throw-away PostgreSQL database per test, made and dropped with the `psql` client.

use std::process::Command;

use crate::{ENV_POSTGRES, required_env, unique_name};

/// A fresh database (`CREATE DATABASE test_<random>`) on the server named by
/// `ADAPTER_REGISTRY_TEST_POSTGRES`; dropped `WITH (FORCE)` when this value is dropped,
/// even if a server process still holds connections to it.
#[derive(Debug)]
pub struct PgDatabase {
    /// Connection URL of the new database (the admin URL with the database name replaced).
    pub url: String,
    /// The database's name.
    pub name: String,
    admin_url: String,
}

impl PgDatabase {
    /// Creates the database.
    ///
    /// # Panics
    /// If `ADAPTER_REGISTRY_TEST_POSTGRES` is unset or `psql` fails (with its output).
    pub fn create() -> PgDatabase {
        let admin_url = required_env(ENV_POSTGRES);
        let name = unique_name("test", '_');
        psql(&admin_url, &format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("cannot create PostgreSQL database {name}: {e}"));
        let url = with_database(&admin_url, &name);
        PgDatabase {
            url,
            name,
            admin_url,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(e) = psql(&self.admin_url, &sql) {
            eprintln!(
                "warning: cannot drop PostgreSQL database {}: {e}",
                self.name
            );
        }
    }
}

/// Runs one SQL command with `psql`, returning its stderr on failure.
pub(crate) fn psql(url: &str, sql: &str) -> Result<String, String> {
    let output = Command::new("psql")
        .args(["--no-psqlrc", "--quiet", "--tuples-only", "--no-align"])
        .args(["-v", "ON_ERROR_STOP=1", "--dbname", url, "-c", sql])
        .output()
        .map_err(|e| format!("cannot run psql (is the PostgreSQL client installed?): {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    } else {
        Err(format!(
            "psql {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// `postgres://u@h:p/admin?x=y` with the database replaced: `postgres://u@h:p/name?x=y`.
fn with_database(admin_url: &str, name: &str) -> String {
    let authority_start = admin_url.find("://").map_or(0, |i| i + 3);
    let (base, query) = match admin_url.find('?') {
        Some(q) => admin_url.split_at(q),
        None => (admin_url, ""),
    };
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    format!("{base}/{name}{query}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_name_replaces_the_admin_database() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "test_1"),
            "postgres://postgres@127.0.0.1:5432/test_1"
        );
        assert_eq!(
            with_database("postgres://u:p@h:1/postgres?sslmode=disable", "t"),
            "postgres://u:p@h:1/t?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h:1", "t"), "postgres://h:1/t");
    }

    /// Creates a database, writes to it, and checks that dropping the handle removes it.
    /// Needs `ADAPTER_REGISTRY_TEST_POSTGRES`; skipped with a note (or failed, under
    /// `ADAPTER_REGISTRY_REQUIRE_SERVICES=1`) without it.
    #[test]
    fn create_gives_a_usable_database_and_drop_removes_it() {
        let Some(admin) = crate::service_for_test(ENV_POSTGRES) else {
            return;
        };
        let db = PgDatabase::create();
        psql(&db.url, "CREATE TABLE t (x int); INSERT INTO t VALUES (42)").unwrap();
        assert_eq!(psql(&db.url, "SELECT x FROM t").unwrap(), "42");
        let exists = format!(
            "SELECT count(*) FROM pg_database WHERE datname = '{}'",
            db.name
        );
        assert_eq!(psql(&admin, &exists).unwrap(), "1");
        // An open connection must not keep the database alive.
        let mut holder = Command::new("psql")
            .args(["--dbname", &db.url, "-c", "SELECT pg_sleep(30)"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let active = format!(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}'",
            db.name
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while psql(&admin, &active).unwrap() == "0" {
            assert!(std::time::Instant::now() < deadline, "psql never connected");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        drop(db);
        assert_eq!(psql(&admin, &exists).unwrap(), "0");
        let _ = holder.kill();
        let _ = holder.wait();
    }
}
