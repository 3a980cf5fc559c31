//! Re-embeds the migrations (`embed_migrations!` in `db`) when one is added.

fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
