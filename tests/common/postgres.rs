//! The PostgreSQL server the tests use, and databases of their own on it.

/// Where tests find PostgreSQL (`scripts/test.sh` sets it); the local default
/// otherwise. Tests that need it fail without it, saying so: none is skipped.
pub const ADMIN_URL_ENV: &str = "SURGE_TEST_POSTGRES_URL";

/// The URL of the PostgreSQL server's administrative database.
pub fn admin_url() -> String {
    std::env::var(ADMIN_URL_ENV)
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database created for one test (so the test's to drop).
pub struct Database {
    pub name: String,
    pub url: String,
    admin: sqlx::PgPool,
}

impl Database {
    /// Creates `{prefix}_{random}` on the server at `admin_url()`.
    pub async fn create(prefix: &str) -> Self {
        let admin_url = admin_url();
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        let admin = sqlx::PgPool::connect(&admin_url)
            .await
            .expect("PostgreSQL must be running for these tests (scripts/test.sh starts it)");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .expect("create test database");
        let (base, _) = admin_url.rsplit_once('/').expect("url has a database");
        let url = format!("{base}/{name}");
        Self { name, url, admin }
    }

    /// Drops the database, closing whatever connections still use it.
    pub async fn destroy(self) {
        sqlx::query(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
            .execute(&self.admin)
            .await
            .expect("drop test database");
    }
}
