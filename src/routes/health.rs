//! Probes: `/healthz` (the process answers) and `/readyz` (the database does).

use actix_web::{HttpResponse, web};

use crate::db::{self, DbPool};

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok")
}

pub async fn readyz(pool: web::Data<DbPool>) -> HttpResponse {
    let pool = pool.into_inner();
    let ready = web::block(move || {
        let mut conn = pool.get().map_err(|e| e.to_string())?;
        db::ping(&mut conn).map_err(|e| e.to_string())
    })
    .await;
    match ready {
        Ok(Ok(())) => HttpResponse::Ok().content_type("text/plain").body("ready"),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check failed");
            HttpResponse::ServiceUnavailable()
                .content_type("text/plain")
                .body("database unavailable")
        }
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            HttpResponse::ServiceUnavailable()
                .content_type("text/plain")
                .body("database unavailable")
        }
    }
}
