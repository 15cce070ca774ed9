import CDNNL
import Foundation

/// The one matrix backend: every product of the project goes through `gemm` here, on oneDNN's
/// matmul primitives (made once per shape and reused), at float32 or bfloat16 precision.

/// The precision of the matrix products. bf16 is mixed precision: the products read bfloat16
/// inputs (frozen weights stored so once, activations rounded as they enter) and accumulate
/// and write float32; everything else stays float32.
public enum Precision: String, Sendable, CaseIterable {
    case fp32, bf16
}

/// Elements of one matrix operand.
public enum MatrixElements {
    case float32(UnsafePointer<Float>)
    case bfloat16(UnsafePointer<UInt16>)
}

/// A product repeated over up to two batch dimensions (sequences, heads): for batch (i, j) each
/// operand starts at its base + i·stride.0 + j·stride.1. (No stride of 0: oneDNN runs an operand
/// shared across a batch dimension only in its reference code; attention repeats its prefix.)
public struct ProductBatch: Hashable, Sendable {
    public let counts: (Int, Int)
    public let a: (Int, Int), b: (Int, Int), c: (Int, Int)

    public init(counts: (Int, Int), a: (Int, Int), b: (Int, Int), c: (Int, Int)) {
        precondition(a.0 > 0 && a.1 > 0 && b.0 > 0 && b.1 > 0 && c.0 > 0 && c.1 > 0, "batch strides must be positive")
        self.counts = counts
        self.a = a
        self.b = b
        self.c = c
    }

    public static func == (x: Self, y: Self) -> Bool {
        x.counts == y.counts && x.a == y.a && x.b == y.b && x.c == y.c
    }

    public func hash(into hasher: inout Hasher) {
        // Element by element: an array literal here would allocate on every product.
        hasher.combine(counts.0); hasher.combine(counts.1)
        hasher.combine(a.0); hasher.combine(a.1); hasher.combine(b.0); hasher.combine(b.1)
        hasher.combine(c.0); hasher.combine(c.1)
    }
}

/// Row-major general matrix product, C (m, n) = alpha · op(A) · op(B) [+ bias] + beta · C,
/// op(A) (m, k) and op(B) (k, n), repeated over `batch` when given. Leading dimensions are row
/// strides, so a head's slice of a (B, T, C) tensor is addressed in place with `ld = C`.
/// It runs in bfloat16 when `MatrixEngine.precision` says so or an operand is bfloat16 (a float32
/// operand is then rounded into scratch space first); C is float32 either way. `bias` (n) needs
/// alpha 1 and no batch. Multi-threaded by oneDNN: call it from outside `parallelFor`.
public func gemm(
    transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
    a: MatrixElements, lda: Int, b: MatrixElements, ldb: Int,
    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, bias: UnsafePointer<Float>? = nil,
    batch: ProductBatch? = nil
) {
    precondition(bias == nil || (alpha == 1 && batch == nil), "a bias needs alpha 1 and no batch")
    let batchCount = batch.map { $0.counts.0 * $0.counts.1 } ?? 1
    guard m > 0, n > 0, batchCount > 0 else { return }
    WorkCounter.add(batchCount * m, n, k)
    let bf16: Bool
    switch (a, b) {
    case (.float32, .float32): bf16 = MatrixEngine.precision == .bf16
    default: bf16 = true
    }
    let key = ProductKey(
        m: m, n: n, k: k, a: transA ? (1, lda) : (lda, 1), b: transB ? (1, ldb) : (ldb, 1), ldc: ldc,
        batch: batch, bf16: bf16, alpha: alpha, beta: beta, bias: bias != nil)
    WorkCounter.timed(&WorkCounter.productSeconds) { MatrixEngine.run(key, a: a, b: b, c: c, bias: bias) }
}

extension Tensor {
    /// The elements as a float32 matrix operand.
    public var elements: MatrixElements { .float32(data) }
}

/// `gemm` over float32 operands.
@inline(__always)
public func gemm(
    transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
    a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, batch: ProductBatch? = nil
) {
    gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: .float32(a), lda: lda,
         b: .float32(b), ldb: ldb, beta: beta, c: c, ldc: ldc, batch: batch)
}

/// Dimensions and element strides of one operand, as oneDNN's memory descriptors take them.
typealias OperandLayout = (dims: [Int64], strides: [Int64])

/// One product's shape, layout and attributes: what a primitive is made for.
/// Strides are (row, column) element strides of op(A) (m, k) and op(B) (k, n).
struct ProductKey: Hashable {
    let m: Int, n: Int, k: Int
    let a: (Int, Int), b: (Int, Int)
    let ldc: Int
    let batch: ProductBatch?
    let bf16: Bool
    let alpha: Float, beta: Float
    let bias: Bool

    static func == (x: Self, y: Self) -> Bool {
        (x.m, x.n, x.k, x.ldc) == (y.m, y.n, y.k, y.ldc)
            && (x.bf16, x.alpha, x.beta, x.bias) == (y.bf16, y.alpha, y.beta, y.bias)
            && x.a == y.a && x.b == y.b && x.batch == y.batch
    }

    func hash(into hasher: inout Hasher) {
        hasher.combine(m); hasher.combine(n); hasher.combine(k); hasher.combine(ldc)
        hasher.combine(a.0); hasher.combine(a.1); hasher.combine(b.0); hasher.combine(b.1)
        hasher.combine(batch)
        hasher.combine(bf16)
        hasher.combine(alpha)
        hasher.combine(beta)
        hasher.combine(bias)
    }

    var operations: Double {
        2 * Double(m) * Double(n) * Double(k) * Double(batch.map { $0.counts.0 * $0.counts.1 } ?? 1)
    }

    /// Dimensions and strides of an operand of `rows` × `columns` with these (row, column)
    /// strides, batched as the key is.
    func layout(rows: Int, columns: Int, strides: (Int, Int), batchStrides: ((ProductBatch) -> (Int, Int))?)
        -> OperandLayout {
        guard let batch, let batchStrides else {
            return ([Int64(rows), Int64(columns)], [Int64(strides.0), Int64(strides.1)])
        }
        let s = batchStrides(batch)
        return ([batch.counts.0, batch.counts.1, rows, columns].map(Int64.init),
                [s.0, s.1, strides.0, strides.1].map(Int64.init))
    }

    /// Elements an operand's addresses span, from its first to its last.
    static func span(_ layout: OperandLayout) -> Int {
        1 + zip(layout.dims, layout.strides).reduce(0) { $0 + Int($1.0 - 1) * Int($1.1) }
    }
}

/// oneDNN's engine, stream and the primitives made so far, one per `ProductKey`.
public enum MatrixEngine {
    /// The precision of products over float32 operands; set once at start (`--precision`).
    public nonisolated(unsafe) static var precision: Precision = .fp32

    /// Whether this processor runs bfloat16 products natively: AVX512-BF16 or AMX, as oneDNN finds it.
    public static var supportsBFloat16: Bool {
        let isa = dnnl_get_effective_cpu_isa().rawValue
        return isa & dnnl_cpu_isa_avx512_core_bf16.rawValue == dnnl_cpu_isa_avx512_core_bf16.rawValue
    }

    /// bf16 where the processor runs it natively, else fp32.
    public static var defaultPrecision: Precision { supportsBFloat16 ? .bf16 : .fp32 }

    /// The largest product run since `resetLargest()`, by operations: its implementation name
    /// (for example `brg:avx512_core_amx_bf16`) and what it takes to time it again.
    public static var largestProduct: (implementation: String, operations: Double)? {
        lock.lock(); defer { lock.unlock() }
        return largest.map { ($0.implementation, $0.key.operations) }
    }

    public static func resetLargest() {
        lock.lock(); defer { lock.unlock() }
        largest = nil
    }

    private static let lock = NSLock()
    private nonisolated(unsafe) static var products: [ProductKey: Primitive] = [:]
    private nonisolated(unsafe) static var largest: Primitive?
    private nonisolated(unsafe) static let engine: dnnl_engine_t = {
        _ = Parallelism.threads  // OpenMP's thread count is set before oneDNN first reads it.
        var engine: dnnl_engine_t?
        check(dnnl_engine_create(&engine, dnnl_cpu, 0), "engine")
        return engine!
    }()
    private nonisolated(unsafe) static let stream: dnnl_stream_t = {
        var stream: dnnl_stream_t?
        check(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags.rawValue), "stream")
        return stream!
    }()
    /// oneDNN's own scratchpad, grow-only, shared by every primitive (products run one at a time).
    private nonisolated(unsafe) static var scratchpad = GrowingBuffer()

    static func run(_ key: ProductKey, a: MatrixElements, b: MatrixElements, c: UnsafeMutablePointer<Float>,
                    bias: UnsafePointer<Float>?) {
        lock.lock(); defer { lock.unlock() }
        let primitive: Primitive
        if let made = products[key] {
            primitive = made
        } else {
            var made: Primitive?
            WorkCounter.timed(&WorkCounter.primitiveSeconds) { made = Primitive(key, engine: engine) }
            primitive = made!
            products[key] = primitive
            WorkCounter.primitivesMade += 1
        }
        if key.operations > largest?.key.operations ?? 0 { largest = primitive }
        // Operands no scope shares are rounded into the first copy buffers past the open scopes' own.
        var freeBuffer = sharedCopies.count
        let aData = operand(a, bf16: key.bf16, span: primitive.spans.a, copyBuffer: &freeBuffer)
        let bData = operand(b, bf16: key.bf16, span: primitive.spans.b, copyBuffer: &freeBuffer)
        let pad = scratchpad.reserve(bytes: primitive.scratchpadBytes)
        primitive.execute(a: aData, b: bData, c: c, bias: bias, scratchpad: pad, stream: stream)
    }

    /// The operand's memory in the precision the product reads: as given, or rounded to bfloat16
    /// (from a shared copy when a `sharingRounding` scope covers it, else into copy buffer `index`,
    /// which then moves on to the next).
    private static func operand(_ elements: MatrixElements, bf16: Bool, span: Int,
                                copyBuffer index: inout Int) -> UnsafeMutableRawPointer {
        switch elements {
        case .bfloat16(let pointer):
            return UnsafeMutableRawPointer(mutating: pointer)
        case .float32(let pointer) where bf16:
            if let shared = sharedCopy(covering: pointer, span: span) { return UnsafeMutableRawPointer(shared) }
            let rounded = copyBuffer(index, count: span)
            index += 1
            round(pointer, count: span, into: rounded)
            return UnsafeMutableRawPointer(rounded)
        case .float32(let pointer):
            return UnsafeMutableRawPointer(mutating: pointer)
        }
    }

    /// A float32 range that the products of one `sharingRounding` scope read from one bfloat16 copy.
    private struct SharedCopy {
        let source: UnsafePointer<Float>, count: Int, thread: pthread_t
        var rounded: Bool

        /// Whether this copy, made on `thread`, holds the `count` floats at `pointer`.
        func covers(_ pointer: UnsafePointer<Float>, count: Int, on thread: pthread_t) -> Bool {
            pthread_equal(self.thread, thread) != 0 && pointer >= source && pointer + count <= source + self.count
        }
    }

    /// Whether `sharingRounding` scopes share their copies; off, every product rounds its own
    /// float32 inputs (tests check that both give the same bits).
    public nonisolated(unsafe) static var sharesRoundedCopies = true

    /// Open scopes, innermost last; `copyBuffers[i]` holds the copy of `sharedCopies[i]`, and the
    /// buffers past them a product's own copies (grow-only: the deepest nesting's sizes stay).
    private nonisolated(unsafe) static var sharedCopies: [SharedCopy] = []
    private nonisolated(unsafe) static var copyBuffers: [GrowingBuffer] = []

    /// Runs `body` with the `count` floats at `source` rounded to bfloat16 at most once, at the first
    /// product that reads them, and every product of `body` reading from that copy, instead of
    /// rounding them per product: for a tensor several products read (q, k and v's input,
    /// attention's probabilities, a gradient that feeds both dinp and dweight). The caller promises
    /// that those floats do not change during `body`. At fp32, or inside a scope that already
    /// shares the range, it just runs `body`. Scopes nest; each thread has its own.
    public static func sharingRounding<R>(of source: UnsafePointer<Float>, count: Int, _ body: () throws -> R)
        rethrows -> R {
        guard precision == .bf16, sharesRoundedCopies, count > 0 else { return try body() }
        lock.lock()
        let thread = pthread_self()
        let covered = sharedCopies.contains { $0.covers(source, count: count, on: thread) }
        if !covered {
            sharedCopies.append(SharedCopy(source: source, count: count, thread: thread, rounded: false))
        }
        lock.unlock()
        defer {
            if !covered {
                lock.lock()
                let index = sharedCopies.lastIndex { $0.source == source && pthread_equal($0.thread, thread) != 0 }!
                sharedCopies.remove(at: index)
                // The later scopes' copies move down a place with their entries (LIFO: none).
                if index < sharedCopies.count {
                    copyBuffers.insert(copyBuffers.remove(at: index), at: sharedCopies.count)
                }
                lock.unlock()
            }
        }
        return try body()
    }

    /// The bfloat16 copy of `span` floats at `pointer` from an open scope of this thread that covers
    /// them, rounded now if no product has read it yet; nil when no scope does. Called under `lock`.
    private static func sharedCopy(covering pointer: UnsafePointer<Float>, span: Int) -> UnsafeMutablePointer<UInt16>? {
        guard !sharedCopies.isEmpty else { return nil }
        let thread = pthread_self()
        guard let index = sharedCopies.lastIndex(where: { $0.covers(pointer, count: span, on: thread) }) else {
            return nil
        }
        let entry = sharedCopies[index]
        let copy = copyBuffer(index, count: entry.count)
        if !entry.rounded {
            round(entry.source, count: entry.count, into: copy)
            sharedCopies[index].rounded = true
        }
        return copy + (pointer - entry.source)
    }

    /// Rounds `count` floats into `copy`, timed as rounding.
    private static func round(_ source: UnsafePointer<Float>, count: Int, into copy: UnsafeMutablePointer<UInt16>) {
        WorkCounter.timed(&WorkCounter.roundingSeconds) { convertToBFloat16(out: copy, inp: source, count: count) }
    }

    /// Copy buffer `index`, holding at least `count` bfloat16 values. Called under `lock`.
    private static func copyBuffer(_ index: Int, count: Int) -> UnsafeMutablePointer<UInt16> {
        while copyBuffers.count <= index { copyBuffers.append(GrowingBuffer()) }
        return copyBuffers[index].reserve(bytes: 2 * count).assumingMemoryBound(to: UInt16.self)
    }

    /// Times the largest product run so far (same shape, layout and precision) on fresh
    /// operands, in GFLOP/s: the in-run peak to compare a whole step's rate with.
    public static func measureLargestProduct(minSeconds: Double = 0.5) -> Double? {
        lock.lock()
        let key = largest?.key
        lock.unlock()
        return key.map { measure($0, minSeconds: minSeconds) }
    }

    /// Times an (m, k) · (k, n) product at the current precision, in GFLOP/s.
    public static func measure(m: Int, n: Int, k: Int, minSeconds: Double = 0.5) -> Double {
        measure(ProductKey(m: m, n: n, k: k, a: (k, 1), b: (n, 1), ldc: n, batch: nil,
                           bf16: precision == .bf16, alpha: 1, beta: 0, bias: false), minSeconds: minSeconds)
    }

    private static func measure(_ key: ProductKey, minSeconds: Double) -> Double {
        let spans = Primitive.spans(of: Primitive.layouts(of: key))
        let a = Tensor(shape: [spans.a]), b = Tensor(shape: [spans.b]), c = Tensor(shape: [spans.c])
        for i in 0..<a.count { a[i] = Float(i % 7) * 0.01 }
        for i in 0..<b.count { b[i] = Float(i % 5) * 0.01 }
        let roundedA = key.bf16 ? BFloat16Tensor(rounding: a) : nil
        let roundedB = key.bf16 ? BFloat16Tensor(rounding: b) : nil
        let bias = Tensor(shape: [key.n])
        let run = {
            MatrixEngine.run(key, a: roundedA.map { .bfloat16($0.data) } ?? .float32(a.data),
                             b: roundedB.map { .bfloat16($0.data) } ?? .float32(b.data), c: c.data,
                             bias: key.bias ? UnsafePointer(bias.data) : nil)
        }
        run()  // warm-up: page faults, oneDNN's first-call work
        let clock = ContinuousClock(), start = clock.now
        var repetitions = 0, elapsed = 0.0
        repeat {
            run()
            repetitions += 1
            elapsed = (clock.now - start).seconds
        } while elapsed < minSeconds
        return key.operations * Double(repetitions) / elapsed / 1e9
    }

    static func check(_ status: dnnl_status_t, _ what: @autoclosure () -> String) {
        precondition(status == dnnl_success, "oneDNN: \(what()) failed with status \(status.rawValue)")
    }
}

/// One oneDNN matmul primitive with its memory objects, whose data handles are set per call.
private final class Primitive {
    let key: ProductKey
    let implementation: String
    let spans: (a: Int, b: Int, c: Int)
    let scratchpadBytes: Int
    private let primitive: dnnl_primitive_t
    private let memories: [dnnl_memory_t]   // A, B, C, bias?, scratchpad
    private let arguments: [dnnl_exec_arg_t]

    static func layouts(of key: ProductKey)
        -> (a: OperandLayout, b: OperandLayout, c: OperandLayout) {
        (key.layout(rows: key.m, columns: key.k, strides: key.a, batchStrides: { $0.a }),
         key.layout(rows: key.k, columns: key.n, strides: key.b, batchStrides: { $0.b }),
         key.layout(rows: key.m, columns: key.n, strides: (key.ldc, 1), batchStrides: { $0.c }))
    }

    static func spans(of layouts: (a: OperandLayout, b: OperandLayout, c: OperandLayout)) -> (a: Int, b: Int, c: Int) {
        (ProductKey.span(layouts.a), ProductKey.span(layouts.b), ProductKey.span(layouts.c))
    }

    init(_ key: ProductKey, engine: dnnl_engine_t) {
        self.key = key
        let check = MatrixEngine.check
        let layouts = Self.layouts(of: key)
        spans = Self.spans(of: layouts)
        let inputType = key.bf16 ? dnnl_bf16 : dnnl_f32
        func descriptor(_ layout: OperandLayout, _ type: dnnl_data_type_t) -> dnnl_memory_desc_t {
            var md = dnnl_memory_desc_t()
            check(dnnl_memory_desc_init_by_strides(&md, Int32(layout.dims.count), layout.dims, type, layout.strides),
                  "memory descriptor \(layout)")
            return md
        }
        var aDesc = descriptor(layouts.a, inputType), bDesc = descriptor(layouts.b, inputType)
        var cDesc = descriptor(layouts.c, dnnl_f32)
        let ones = [Int64](repeating: 1, count: layouts.c.dims.count - 1)
        var biasDesc = descriptor((ones + [Int64(key.n)], ones.map { _ in Int64(key.n) } + [1]), dnnl_f32)
        var op = dnnl_matmul_desc_t()
        let status = key.bias ? dnnl_matmul_desc_init(&op, &aDesc, &bDesc, &biasDesc, &cDesc)
                              : dnnl_matmul_desc_init(&op, &aDesc, &bDesc, nil, &cDesc)
        check(status, "matmul descriptor")

        var attributes: dnnl_primitive_attr_t?
        check(dnnl_primitive_attr_create(&attributes), "attributes")
        defer { dnnl_primitive_attr_destroy(attributes) }
        check(dnnl_primitive_attr_set_scratchpad_mode(attributes, dnnl_scratchpad_mode_user), "scratchpad mode")
        if key.alpha != 1 {
            var alpha = key.alpha
            check(dnnl_primitive_attr_set_output_scales(attributes, 1, 0, &alpha), "output scale")
        }
        if key.beta != 0 {
            var postOps: dnnl_post_ops_t?
            check(dnnl_post_ops_create(&postOps), "post-ops")
            defer { dnnl_post_ops_destroy(postOps) }
            check(dnnl_post_ops_append_sum(postOps, key.beta), "sum post-op")
            check(dnnl_primitive_attr_set_post_ops(attributes, postOps), "post-ops")
        }
        var descriptorHandle: dnnl_primitive_desc_t?
        check(dnnl_primitive_desc_create(&descriptorHandle, &op, attributes, engine, nil), "matmul for \(key)")
        defer { dnnl_primitive_desc_destroy(descriptorHandle) }
        var info: UnsafePointer<CChar>?
        check(dnnl_primitive_desc_query(descriptorHandle, dnnl_query_impl_info_str, 0, &info), "implementation")
        implementation = info.map { String(cString: $0) } ?? "unknown"
        var created: dnnl_primitive_t?
        check(dnnl_primitive_create(&created, descriptorHandle), "primitive")
        primitive = created!

        let scratchpadDesc = dnnl_primitive_desc_query_md(descriptorHandle, dnnl_query_scratchpad_md, 0)!
        scratchpadBytes = dnnl_memory_desc_get_size(scratchpadDesc)
        func memory(_ desc: UnsafePointer<dnnl_memory_desc_t>) -> dnnl_memory_t {
            var memory: dnnl_memory_t?
            check(dnnl_memory_create(&memory, desc, engine, nil), "memory")
            return memory!
        }
        var made = [memory(&aDesc), memory(&bDesc), memory(&cDesc)]
        var arguments = [dnnl_exec_arg_t(arg: DNNL_ARG_SRC, memory: made[0]),
                         dnnl_exec_arg_t(arg: DNNL_ARG_WEIGHTS, memory: made[1]),
                         dnnl_exec_arg_t(arg: DNNL_ARG_DST, memory: made[2])]
        if key.bias {
            made.append(memory(&biasDesc))
            arguments.append(dnnl_exec_arg_t(arg: DNNL_ARG_BIAS, memory: made.last!))
        }
        made.append(memory(scratchpadDesc))
        arguments.append(dnnl_exec_arg_t(arg: DNNL_ARG_SCRATCHPAD, memory: made.last!))
        memories = made
        self.arguments = arguments
    }

    func execute(a: UnsafeMutableRawPointer, b: UnsafeMutableRawPointer, c: UnsafeMutablePointer<Float>,
                 bias: UnsafePointer<Float>?, scratchpad: UnsafeMutableRawPointer, stream: dnnl_stream_t) {
        let check = MatrixEngine.check
        check(dnnl_memory_set_data_handle(memories[0], a), "source handle")
        check(dnnl_memory_set_data_handle(memories[1], b), "weights handle")
        check(dnnl_memory_set_data_handle(memories[2], c), "destination handle")
        if key.bias {
            check(dnnl_memory_set_data_handle(memories[3], UnsafeMutableRawPointer(mutating: bias)), "bias handle")
        }
        check(dnnl_memory_set_data_handle(memories.last!, scratchpad), "scratchpad handle")
        arguments.withUnsafeBufferPointer { arguments in
            let status = dnnl_primitive_execute(primitive, stream, Int32(arguments.count), arguments.baseAddress)
            check(status, "matmul \(key)")
        }
        check(dnnl_stream_wait(stream), "stream wait")
    }
}

/// A 64-byte aligned buffer that grows to the largest size asked of it and is then reused.
struct GrowingBuffer {
    private var pointer: UnsafeMutableRawPointer?
    private var bytes = 0

    mutating func reserve(bytes wanted: Int) -> UnsafeMutableRawPointer {
        if wanted > bytes || pointer == nil {
            pointer?.deallocate()
            bytes = max(wanted, 64)
            pointer = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        }
        return pointer!
    }
}

extension Duration {
    /// The duration in seconds, as a Double.
    public var seconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) * 1e-18
    }
}
