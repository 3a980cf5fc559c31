//! Re-embeds migrations when a new one is added.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
