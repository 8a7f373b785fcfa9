//! Synthetic WebAssembly modules of chosen sizes, for the demo, the benchmarks and the tests.
//!
//! Not part of the stable API.

/// A module in WebAssembly text: `answer` returns `seed`; `run(x)` threads `x` through the
/// first few of `functions` generated functions, each `ops` arithmetic steps long, so the
/// compiled artifact grows with `functions × ops` (roughly 10 bytes of machine code per op).
///
/// # Example
///
/// ```
/// let wat = wasmpak_samples::module_wat(7, 3, 10);
/// assert!(wat.contains("(export \"answer\")"));
/// ```
pub fn module_wat(seed: u32, functions: u32, ops: u32) -> String {
    let functions = functions.max(1);
    let mut wat = String::with_capacity((functions as usize) * (ops as usize) * 24 + 256);
    wat.push_str("(module\n");
    wat.push_str(&format!(
        "  (func (export \"answer\") (result i32) i32.const {})\n",
        seed as i32
    ));
    for f in 0..functions {
        wat.push_str(&format!(
            "  (func $f{f} (param i32) (result i32) local.get 0\n"
        ));
        for op in 0..ops {
            let k = seed.wrapping_mul(31).wrapping_add(f * 7 + op) % 1000;
            wat.push_str("    i32.const ");
            wat.push_str(&k.to_string());
            wat.push_str(match op % 3 {
                0 => " i32.add\n",
                1 => " i32.xor\n",
                _ => " i32.mul\n",
            });
        }
        wat.push_str("  )\n");
    }
    wat.push_str("  (func (export \"run\") (param i32) (result i32) local.get 0\n");
    for f in 0..functions.min(8) {
        wat.push_str(&format!("    call $f{f}\n"));
    }
    wat.push_str("  )\n)\n");
    wat
}

/// What [`module_wat`]'s `run` export returns for `input`: the same arithmetic, in Rust.
pub fn expected_run(seed: u32, functions: u32, ops: u32, input: i32) -> i32 {
    let functions = functions.max(1);
    let mut x = input;
    for f in 0..functions.min(8) {
        for op in 0..ops {
            let k = (seed.wrapping_mul(31).wrapping_add(f * 7 + op) % 1000) as i32;
            x = match op % 3 {
                0 => x.wrapping_add(k),
                1 => x ^ k,
                _ => x.wrapping_mul(k),
            };
        }
    }
    x
}

/// A named sample: the demo's and benchmarks' module sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// A short name for tables.
    pub name: &'static str,
    /// Generated functions.
    pub functions: u32,
    /// Arithmetic steps per function.
    pub ops: u32,
}

/// Samples from about 1 KB to about 5 MB of compiled artifact.
pub const SAMPLES: [Sample; 4] = [
    Sample {
        name: "tiny",
        functions: 1,
        ops: 4,
    },
    Sample {
        name: "small",
        functions: 20,
        ops: 100,
    },
    Sample {
        name: "medium",
        functions: 200,
        ops: 250,
    },
    Sample {
        name: "large",
        functions: 1000,
        ops: 500,
    },
];

/// A small WASI command (WebAssembly text) for the tests, the examples and `wasmpak run`. Its
/// first argument after the program name picks what it does:
///
/// - `echo WORDS...`: prints the words, separated by spaces, and a newline.
/// - `cat`: copies standard input to standard output.
/// - `printenv`: prints the environment, one `NAME=value` a line.
/// - `read PATH`: prints the file at `PATH` (relative to the guest's root; a leading `/` is
///   allowed). If it cannot be opened, says so on standard error and exits with the WASI
///   error number (44 for a missing file).
/// - `fail`: says so on standard error and exits with code 3.
/// - `trap`: executes `unreachable`.
///
/// Anything else prints a usage line on standard error and exits with code 2.
///
/// # Example
///
/// ```
/// let wasm = wasmer::wat2wasm(wasmpak_samples::WASI_TOOL_WAT.as_bytes())?;
/// let module = wasmer::Module::new(&wasmer::Engine::default(), &wasm)?;
/// assert!(module.exports().any(|e| e.name() == "_start"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const WASI_TOOL_WAT: &str = r#"(module
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $environ_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  ;; 0: iovec; 8: byte count; 16: argc; 20: argv bytes; 24: envc; 28: environ bytes;
  ;; 32: opened fd; 1024: argv pointers; 2048: argv bytes; 16384: environ pointers;
  ;; 20480: environ bytes; 40960: I/O buffer (16 KiB); 60000: texts.
  (memory (export "memory") 1)
  (data (i32.const 60000) "\n")
  (data (i32.const 60001) " ")
  (data (i32.const 60002) "usage: wasi-tool echo|cat|printenv|read PATH|fail|trap\n")
  (data (i32.const 60058) "failing on purpose\n")
  (data (i32.const 60077) "cannot open the file\n")

  (func $write (param $fd i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8))))

  (func $strlen (param $ptr i32) (result i32)
    (local $end i32)
    (local.set $end (local.get $ptr))
    (block $done
      (loop $next
        (br_if $done (i32.eqz (i32.load8_u (local.get $end))))
        (local.set $end (i32.add (local.get $end) (i32.const 1)))
        (br $next)))
    (i32.sub (local.get $end) (local.get $ptr)))

  (func $puts (param $fd i32) (param $ptr i32)
    (call $write (local.get $fd) (local.get $ptr) (call $strlen (local.get $ptr))))

  ;; Copies `from` to standard output until end of file; returns the WASI error number.
  (func $copy (param $from i32) (result i32)
    (local $errno i32)
    (loop $more
      (i32.store (i32.const 0) (i32.const 40960))
      (i32.store (i32.const 4) (i32.const 16384))
      (local.set $errno (call $fd_read (local.get $from) (i32.const 0) (i32.const 1) (i32.const 8)))
      (if (local.get $errno) (then (return (local.get $errno))))
      (if (i32.eqz (i32.load (i32.const 8))) (then (return (i32.const 0))))
      (call $write (i32.const 1) (i32.const 40960) (i32.load (i32.const 8)))
      (br $more))
    (i32.const 0))

  (func $arg (param $i i32) (result i32)
    (i32.load (i32.add (i32.const 1024) (i32.mul (local.get $i) (i32.const 4)))))

  (func (export "_start")
    (local $i i32) (local $cmd i32) (local $path i32) (local $errno i32)
    (drop (call $args_sizes_get (i32.const 16) (i32.const 20)))
    (drop (call $args_get (i32.const 1024) (i32.const 2048)))
    (if (i32.lt_u (i32.load (i32.const 16)) (i32.const 2))
      (then (call $write (i32.const 2) (i32.const 60002) (i32.const 55)) (call $proc_exit (i32.const 2))))
    (local.set $cmd (i32.load8_u (call $arg (i32.const 1))))
    ;; echo
    (if (i32.eq (local.get $cmd) (i32.const 101))
      (then
        (local.set $i (i32.const 2))
        (block $done
          (loop $next
            (br_if $done (i32.ge_u (local.get $i) (i32.load (i32.const 16))))
            (if (i32.gt_u (local.get $i) (i32.const 2))
              (then (call $write (i32.const 1) (i32.const 60001) (i32.const 1))))
            (call $puts (i32.const 1) (call $arg (local.get $i)))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $next)))
        (call $write (i32.const 1) (i32.const 60000) (i32.const 1))
        (return)))
    ;; cat
    (if (i32.eq (local.get $cmd) (i32.const 99))
      (then (call $proc_exit (call $copy (i32.const 0)))))
    ;; printenv
    (if (i32.eq (local.get $cmd) (i32.const 112))
      (then
        (drop (call $environ_sizes_get (i32.const 24) (i32.const 28)))
        (drop (call $environ_get (i32.const 16384) (i32.const 20480)))
        (local.set $i (i32.const 0))
        (block $done
          (loop $next
            (br_if $done (i32.ge_u (local.get $i) (i32.load (i32.const 24))))
            (call $puts (i32.const 1)
              (i32.load (i32.add (i32.const 16384) (i32.mul (local.get $i) (i32.const 4)))))
            (call $write (i32.const 1) (i32.const 60000) (i32.const 1))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $next)))
        (return)))
    ;; read PATH, relative to the first preopened directory (fd 3)
    (if (i32.eq (local.get $cmd) (i32.const 114))
      (then
        (if (i32.lt_u (i32.load (i32.const 16)) (i32.const 3))
          (then (call $write (i32.const 2) (i32.const 60002) (i32.const 55)) (call $proc_exit (i32.const 2))))
        (local.set $path (call $arg (i32.const 2)))
        (if (i32.eq (i32.load8_u (local.get $path)) (i32.const 47))
          (then (local.set $path (i32.add (local.get $path) (i32.const 1)))))
        (local.set $errno
          (call $path_open (i32.const 3) (i32.const 1) (local.get $path) (call $strlen (local.get $path))
            (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 32)))
        (if (local.get $errno)
          (then (call $write (i32.const 2) (i32.const 60077) (i32.const 21)) (call $proc_exit (local.get $errno))))
        (call $proc_exit (call $copy (i32.load (i32.const 32))))))
    ;; fail
    (if (i32.eq (local.get $cmd) (i32.const 102))
      (then (call $write (i32.const 2) (i32.const 60058) (i32.const 19)) (call $proc_exit (i32.const 3))))
    ;; trap
    (if (i32.eq (local.get $cmd) (i32.const 116)) (then unreachable))
    (call $write (i32.const 2) (i32.const 60002) (i32.const 55))
    (call $proc_exit (i32.const 2)))
)
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_run_matches_the_module() {
        let engine = wasmer::Engine::default();
        let wat = module_wat(5, 3, 7);
        let module = wasmer::Module::new(&engine, &wat).unwrap();
        let mut store = wasmer::Store::new(engine);
        let instance = wasmer::Instance::new(&mut store, &module, &wasmer::imports! {}).unwrap();
        let run = instance
            .exports
            .get_typed_function::<i32, i32>(&store, "run")
            .unwrap();
        for input in [0, 1, -7, 12345] {
            assert_eq!(
                run.call(&mut store, input).unwrap(),
                expected_run(5, 3, 7, input)
            );
        }
    }
}
