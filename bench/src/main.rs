//! odradek-bench: not built yet (issue 5).
fn main() {
    eprintln!("odradek-bench is not implemented yet");
    std::process::exit(2);
}
