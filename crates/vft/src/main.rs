fn main() -> anyhow::Result<()> {
    vft::main()
}
