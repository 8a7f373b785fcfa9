//! A pool of distinct real modules, compiled once per test binary.

use std::sync::OnceLock;

use wasmer::{Engine, Function, FunctionType, Imports, Instance, Module, Store, Type, Value};
use wasmpak::ModuleHash;

/// One module of the pool and what it must do.
pub struct PoolModule {
    pub wasm: Vec<u8>,
    pub key: ModuleHash,
    pub module: Module,
    pub serialized: Vec<u8>,
    /// `answer()` returns this.
    pub answer: i32,
    /// `run(7)` returns this.
    pub run7: i32,
    pub imports: Vec<String>,
    pub exports: Vec<String>,
}

pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(Engine::default)
}

/// Sizes differ (functions × ops), constants differ (seed), and odd members import a host
/// function, so imports are part of what must round-trip.
const SHAPES: [(u32, u32, u32); 8] = [
    (1, 1, 2),
    (2, 3, 40),
    (3, 10, 100),
    (4, 1, 500),
    (5, 40, 60),
    (6, 7, 7),
    (7, 120, 80),
    (8, 2, 2),
];

fn with_import(wat: String) -> String {
    // Insert an import and an export that calls it right after "(module".
    wat.replacen(
        "(module\n",
        "(module\n  (import \"env\" \"twice\" (func $twice (param i32) (result i32)))\n  \
         (func (export \"call_host\") (param i32) (result i32) local.get 0 call $twice)\n",
        1,
    )
}

pub fn pool() -> &'static [PoolModule] {
    static POOL: OnceLock<Vec<PoolModule>> = OnceLock::new();
    POOL.get_or_init(|| {
        let handles: Vec<_> = SHAPES
            .iter()
            .enumerate()
            .map(|(i, &(seed, functions, ops))| {
                std::thread::spawn(move || {
                    let mut wat = wasmpak_samples::module_wat(seed, functions, ops);
                    if i % 2 == 1 {
                        wat = with_import(wat);
                    }
                    let wasm = wasmer::wat2wasm(wat.as_bytes()).unwrap().into_owned();
                    let module = Module::new(engine(), &wasm).unwrap();
                    let serialized = module.serialize().unwrap().to_vec();
                    let imports = module
                        .imports()
                        .map(|i| format!("{}/{}", i.module(), i.name()))
                        .collect();
                    let exports = module.exports().map(|e| e.name().to_string()).collect();
                    PoolModule {
                        key: ModuleHash::new(&wasm),
                        wasm,
                        module,
                        serialized,
                        answer: seed as i32,
                        run7: wasmpak_samples::expected_run(seed, functions, ops, 7),
                        imports,
                        exports,
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Checks that `loaded` is `expected`'s module: same serialized bytes, same imports and
/// exports, and it computes the same values when instantiated.
pub fn assert_same_module(loaded: &Module, expected: &PoolModule) {
    assert!(
        loaded.serialize().unwrap().as_ref() == expected.serialized.as_slice(),
        "serialized bytes differ"
    );
    let imports: Vec<String> = loaded
        .imports()
        .map(|i| format!("{}/{}", i.module(), i.name()))
        .collect();
    let exports: Vec<String> = loaded.exports().map(|e| e.name().to_string()).collect();
    assert_eq!(imports, expected.imports);
    assert_eq!(exports, expected.exports);
    let mut store = Store::new(engine().clone());
    let mut imports = Imports::new();
    if !expected.imports.is_empty() {
        let signature = FunctionType::new(vec![Type::I32], vec![Type::I32]);
        let twice = Function::new(&mut store, signature, |args| {
            Ok(vec![Value::I32(args[0].unwrap_i32() * 2)])
        });
        imports.define("env", "twice", twice);
    }
    let instance = Instance::new(&mut store, loaded, &imports).unwrap();
    let answer = instance
        .exports
        .get_typed_function::<(), i32>(&store, "answer")
        .unwrap();
    assert_eq!(answer.call(&mut store).unwrap(), expected.answer);
    let run = instance
        .exports
        .get_typed_function::<i32, i32>(&store, "run")
        .unwrap();
    assert_eq!(run.call(&mut store, 7).unwrap(), expected.run7);
    if !expected.imports.is_empty() {
        let call_host = instance
            .exports
            .get_typed_function::<i32, i32>(&store, "call_host")
            .unwrap();
        assert_eq!(call_host.call(&mut store, 21).unwrap(), 42);
    }
}
