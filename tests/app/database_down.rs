//! A database that does not answer is the 503 page, never a 500 or a hang,
//! and the site recovers when it answers again.

use reqwest::StatusCode;

use crate::helpers::*;

#[tokio::test]
async fn a_pool_that_times_out_gives_the_503_page() {
    let app = spawn_app().await;
    app.login_test_user().await;
    // Check out every pooled connection, so the next request's checkout times out.
    let pool = app.pool.clone();
    let size = pool.max_size();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let held: Vec<_> = (0..size).map(|_| pool.get_blocking().unwrap()).collect();
        released.recv().ok();
        drop(held);
    });
    while app.pool.state().idle_connections > 0 || app.pool.state().connections < size {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }

    let response = app.get("/account").await;

    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = response.text().await.unwrap();
    assert!(body.contains("unavailable right now"), "{body}");

    release.send(()).unwrap();
    holder.join().unwrap();
    assert_eq!(app.get("/account").await.status(), StatusCode::OK);
}
