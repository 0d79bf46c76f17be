// sqlx::migrate! embeds migrations/ at compile time; a new migration file alone must rebuild.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
