//! The vft binary under test: the same entry point as `vft`, built inside this package so the
//! end-to-end tests get its path from cargo (CARGO_BIN_EXE_vft-e2e).

fn main() -> anyhow::Result<()> {
    vft::main()
}
