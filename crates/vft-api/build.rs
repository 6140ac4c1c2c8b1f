// The dashboard's files are embedded at build time (rust-embed). Cargo rebuilds when a file
// under ui/ changes, is added or is removed: a directory here is scanned as a whole.
fn main() {
    println!("cargo:rerun-if-changed=ui");
}
