//! Direct database access: seeding users the way an operator would.

use gatehouse::db::{self, DbPool};

/// A user that exists in every fresh app.
pub struct TestUser {
    pub id: String,
    pub name: String,
    pub email: String,
    pub password: String,
}

/// Inserts a user directly (bcrypt cost 4).
pub async fn seed_user(pool: &DbPool, name: &str, email: &str, password: &str) -> TestUser {
    let pool = pool.clone();
    let user = TestUser {
        id: uuid::Uuid::new_v4().to_string(),
        name: name.to_owned(),
        email: email.to_owned(),
        password: password.to_owned(),
    };
    let (id, name, email, password) = (
        user.id.clone(),
        user.name.clone(),
        user.email.clone(),
        user.password.clone(),
    );
    tokio::task::spawn_blocking(move || {
        let hash = bcrypt::hash(&password, 4).unwrap();
        let now = db::now();
        let mut conn = pool.get().unwrap();
        db::users::insert(
            &mut conn,
            &db::models::NewUser {
                id: &id,
                email: &email,
                name: &name,
                password_hash: &hash,
                created_at: now,
                updated_at: now,
                registration_ip: None,
            },
        )
        .unwrap();
    })
    .await
    .unwrap();
    user
}
