//! Compiles `src/in_place.c` (the value of `MPI_IN_PLACE`) with the MPI library's compiler wrapper.

fn main() {
    println!("cargo:rerun-if-changed=src/in_place.c");
    let lib = match build_probe_mpi::probe() {
        Ok(lib) => lib,
        Err(errors) => {
            let reasons: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
            panic!(
                "tapegrad-mpi needs an MPI library (on Debian or Ubuntu: apt-get install \
                 libopenmpi-dev openmpi-bin libclang-dev); none was found:\n{}",
                reasons.join("\n")
            );
        }
    };
    let mut build = cc::Build::new();
    build.file("src/in_place.c");
    match lib.mpicc {
        Some(mpicc) => {
            build.compiler(mpicc);
        }
        None => {
            for dir in &lib.include_paths {
                build.include(dir);
            }
        }
    }
    build.compile("tapegrad_mpi_in_place");
}
