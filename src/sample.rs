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
/// let wat = wasmpak::sample::module_wat(7, 3, 10);
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
