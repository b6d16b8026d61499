fn main() -> std::process::ExitCode {
    datum::cli::main()
}
