import Kernels
import Model
import TestSupport
import Tuning
import XCTest

/// bf16 mixed precision against float32 on the real checkpoint and the reference batch: what
/// bfloat16 can hold (8 bits of mantissa, relative rounding 2^-9 on every product input) is
/// logits within a few hundredths and trainable gradients pointing the same way (cosine
/// similarity above 0.99) with a norm within 5%. Skipped where the processor has no bfloat16.
final class BFloat16PrecisionTests: XCTestCase {
    private struct Outcome {
        let logits: [Float]
        let gradients: [String: [Float]]
        let frozenMatricesInBFloat16: Bool
    }

    private func run(_ spec: MethodSpec, precision: Precision, reference: SafeTensorsFile) throws -> Outcome {
        let saved = MatrixEngine.precision
        MatrixEngine.precision = precision
        defer { MatrixEngine.precision = saved }
        // Fresh weights each time: bf16 keeps the frozen ones rounded in place.
        let pretrained = try PretrainedModel(folder: try pretrainedModelFolder())
        let components = try spec.components(weights: pretrained.weights, seed: 1)
        // The reference batch's labels are 0...2.
        let head = TaskHead(kind: .classification, labels: 3, hiddenSize: pretrained.config.hiddenSize, dropout: 0.1, seed: 1)
        let model = TunedModel(weights: pretrained.weights, components: components, head: head)
        let shape = try reference.info("input_ids").shape
        let batch = TokenBatch(batch: shape[0], length: shape[1], inputIds: try reference.int32s("input_ids"),
                               tokenTypeIds: try reference.int32s("token_type_ids"),
                               attentionMask: try reference.int32s("attention_mask").map(Float.init))
        let labels = try reference.int32s("labels")
        let logits = model.forward(batch).array
        model.parameters.zeroGradients()
        model.backward(labels: labels)
        let gradients = Dictionary(uniqueKeysWithValues: model.trainable.map { ($0.name, $0.gradient!.array) })
        let frozen = pretrained.weights.parameters.all.filter { !$0.isTrainable && $0.shape.count == 2 }
        return Outcome(logits: logits, gradients: gradients,
                       frozenMatricesInBFloat16: !frozen.isEmpty && frozen.allSatisfy { $0.bfloat16 != nil })
    }

    private func check(_ caseName: String, spec: MethodSpec, line: UInt = #line) throws {
        try XCTSkipUnless(MatrixEngine.supportsBFloat16, "this processor has no AVX512-BF16 or AMX")
        let reference = try SafeTensorsFile(path: fixture("\(caseName).safetensors"))
        let exact = try run(spec, precision: .fp32, reference: reference)
        let mixed = try run(spec, precision: .bf16, reference: reference)
        XCTAssertFalse(exact.frozenMatricesInBFloat16, line: line)
        if case .full = spec {} else {
            XCTAssertTrue(mixed.frozenMatricesInBFloat16, "frozen matrices kept in bfloat16", line: line)
        }
        let scale = max(1, exact.logits.map(abs).max()!)
        let worst = zip(exact.logits, mixed.logits).map { abs($0 - $1) }.max()!
        XCTAssertLessThan(worst, 0.05 * scale, "\(caseName) logits", line: line)
        XCTAssertEqual(Set(exact.gradients.keys), Set(mixed.gradients.keys), line: line)
        let norm = { (values: [Float]) in values.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot() }
        let largestNorm = exact.gradients.values.map(norm).max()!
        for (name, expected) in exact.gradients {
            let actual = mixed.gradients[name]!
            let dot = zip(expected, actual).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            let (expectedNorm, actualNorm) = (norm(expected), norm(actual))
            // A key bias shifts every score of a query alike, which the softmax ignores: its gradient
            // is zero but for rounding, float32's or bfloat16's, and has no direction to compare.
            guard expectedNorm > 1e-4 * largestNorm else { continue }
            XCTAssertGreaterThan(dot / (expectedNorm * actualNorm), 0.99, "\(caseName) \(name) cosine", line: line)
            XCTAssertEqual(actualNorm / expectedNorm, 1, accuracy: 0.05, "\(caseName) \(name) norm", line: line)
        }
    }

    func testPTuningV2() throws { try check("ptv2_seqcls", spec: .ptv2(length: 8, dropout: 0, positionOffset: nil)) }

    func testLoRA() throws {
        try check("lora_seqcls", spec: .lora(rank: 4, alpha: 8, dropout: 0, targets: ["query", "key", "value", "dense"]))
    }

    func testPTuningV1() throws { try check("ptv1_lstm_seqcls", spec: .ptv1(length: 4, encoder: .lstm(hidden: 32, layers: 2))) }

    func testFullFineTuning() throws { try check("freeze_last2_seqcls", spec: .full) }

    /// Products that read one shared bfloat16 copy of an operand (`MatrixEngine.sharingRounding`)
    /// see the bits they would round themselves: a training pass (dropout on, both head kinds, so
    /// both the top layer's first-position path and the all-positions one) gives the same loss
    /// and gradients with sharing off.
    func testSharedRoundedCopiesChangeNoBit() throws {
        try XCTSkipUnless(MatrixEngine.supportsBFloat16, "this processor has no AVX512-BF16 or AMX")
        let reference = try SafeTensorsFile(path: fixture("ptv2_seqcls.safetensors"))
        let shape = try reference.info("input_ids").shape
        let batch = TokenBatch(batch: shape[0], length: shape[1], inputIds: try reference.int32s("input_ids"),
                               tokenTypeIds: try reference.int32s("token_type_ids"),
                               attentionMask: try reference.int32s("attention_mask").map(Float.init))
        let cases: [(MethodSpec, TaskKind)] = [
            (.ptv2(length: 8, dropout: 0.1), .classification),
            (.lora(rank: 4, alpha: 8, dropout: 0.1, targets: ["query", "value", "dense"]), .tagging),
            (.full, .classification),
        ]
        let saved = MatrixEngine.precision
        MatrixEngine.precision = .bf16
        defer { MatrixEngine.precision = saved; MatrixEngine.sharesRoundedCopies = true }
        for (spec, kind) in cases {
            var passes: [(loss: Float, gradients: [String: [Float]])] = []
            for shares in [true, false] {
                MatrixEngine.sharesRoundedCopies = shares
                let pretrained = try PretrainedModel(folder: try pretrainedModelFolder())
                let head = TaskHead(kind: kind, labels: 3, hiddenSize: pretrained.config.hiddenSize, dropout: 0.1, seed: 1)
                let model = TunedModel(weights: pretrained.weights, components: try spec.components(weights: pretrained.weights,
                                                                                                     seed: 1), head: head)
                let labels = kind == .tagging ? batch.attentionMask.map { $0 == 0 ? -100 : 1 } : try reference.int32s("labels")
                model.forward(batch, dropoutSeed: 3)
                let loss = model.loss(labels: labels)
                model.parameters.zeroGradients()
                model.backward(labels: labels)
                passes.append((loss, Dictionary(uniqueKeysWithValues: model.trainable.map { ($0.name, $0.gradient!.array) })))
            }
            XCTAssertEqual(passes[0].loss, passes[1].loss, "\(spec) loss")
            XCTAssertTrue(passes[0].loss.isFinite)
            XCTAssertEqual(passes[0].gradients.keys.sorted(), passes[1].gradients.keys.sorted())
            for (name, shared) in passes[0].gradients {
                XCTAssertEqual(shared, passes[1].gradients[name]!, "\(spec) \(name)")
            }
        }
    }
}

/// bfloat16 rounding and a bfloat16 product on their own.
final class BFloat16KernelTests: XCTestCase {
    func testRoundingIsToNearestWithTiesToEven() {
        let cases: [(UInt32, UInt16)] = [
            (0x3F80_0000, 0x3F80),   // 1 is exact
            (0x3F80_8000, 0x3F80),   // a tie rounds to the even 0x3F80
            (0x3F81_8000, 0x3F82),   // a tie rounds to the even 0x3F82
            (0x3F80_8001, 0x3F81),   // past the tie rounds up
            (0x7F80_0000, 0x7F80),   // infinity stays infinity
            (0x7F80_0001, 0x7FC0),   // a signalling NaN becomes a quiet NaN, not infinity
        ]
        let input = Tensor(shape: [cases.count], values: cases.map { Float(bitPattern: $0.0) })
        let rounded = BFloat16Tensor(rounding: input)
        for (i, (_, expected)) in cases.enumerated() { XCTAssertEqual(rounded.data[i], expected, "case \(i)") }
        XCTAssertEqual(rounded.float32()[0], 1)
    }

    func testBFloat16ProductIsCloseToFloat32() throws {
        try XCTSkipUnless(MatrixEngine.supportsBFloat16, "this processor has no AVX512-BF16 or AMX")
        var random = SeededRandom(seed: 9)
        let (m, n, k) = (33, 47, 65)
        let a = random.tensor([m, k]), b = random.tensor([k, n])
        let exact = Tensor(shape: [m, n]), mixed = Tensor(shape: [m, n])
        gemm(transA: false, transB: false, m: m, n: n, k: k, a: a.data, lda: k, b: b.data, ldb: n, beta: 0, c: exact.data, ldc: n)
        let weight = BFloat16Tensor(rounding: b)
        gemm(transA: false, transB: false, m: m, n: n, k: k, a: a.elements, lda: k, b: .bfloat16(weight.data), ldb: n,
             beta: 0, c: mixed.data, ldc: n)
        let error = zip(exact.array, mixed.array).reduce(0.0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) }.squareRoot()
        let norm = exact.array.reduce(0.0) { $0 + Double($1 * $1) }.squareRoot()
        XCTAssertLessThan(error / norm, 1e-2)
        XCTAssertGreaterThan(error, 0, "the product did run in bfloat16")
    }
}
