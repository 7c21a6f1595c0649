use std::process::ExitCode;

fn main() -> ExitCode {
    flywheel::cli::main()
}
