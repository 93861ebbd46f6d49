fn main() {
    std::process::exit(tcprace::cli::main());
}
