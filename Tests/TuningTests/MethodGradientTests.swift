import Kernels
import Model
import TestSupport
import Tuning
import XCTest

/// Every method's trainable parameters against finite differences of the training loss,
/// on a tiny random BERT with dropout on (fixed seed), through both heads.
final class MethodGradientTests: XCTestCase {
    private func check(_ spec: MethodSpec, kind: TaskKind, line: UInt = #line) throws {
        let weights = tinyRandomBert(seed: 1)
        let head = TaskHead(kind: kind, labels: 3, hiddenSize: 8, dropout: 0.1, seed: 2)
        let model = TunedModel(weights: weights, components: try spec.components(weights: weights, kind: kind, seed: 3), head: head)
        var random = SplitMix(seed: 4)
        for parameter in model.trainable where parameter.name.hasSuffix("lora_B.weight") {
            // B starts at zero, which would make A's gradient zero too: give it values.
            for i in 0..<parameter.value.count { parameter.value[i] = 0.3 * random.normal() }
        }
        let labels: [Int32] = kind == .classification ? [2, 0] : [-100, 1, 2, -100, -100, 0, -100, -100]
        let loss = { () -> Double in
            model.forward(tinyBatch, dropoutSeed: 11)
            return Double(model.loss(labels: labels))
        }
        model.parameters.zeroGradients()
        _ = loss()
        model.backward(labels: labels)
        XCTAssertFalse(model.trainable.isEmpty, line: line)
        // A key bias shifts every score of a query equally, which softmax ignores: its gradient is truly zero.
        for parameter in model.trainable where !parameter.name.hasSuffix("attention.self.key.bias") {
            let analytic = Tensor(shape: parameter.shape)
            analytic.copy(from: parameter.gradient!)
            checkGradient("\(spec.name) \(parameter.name)", input: parameter.value, analytic: analytic, epsilon: 1e-2,
                          tolerance: 2e-2, line: line, loss: loss)
        }
    }

    func testPTuningV2WithPromptDropout() throws {
        try check(.ptv2(length: 3, dropout: 0.3, positionOffset: nil), kind: .classification)
        try check(.ptv2(length: 2, dropout: 0.3, positionOffset: 0), kind: .tagging)
    }

    func testPrefixTuningMLP() throws { try check(.prefix(length: 3, hidden: 5, positionOffset: nil), kind: .classification) }

    func testPTuningV1LSTMAndMLPEncoders() throws {
        try check(.ptv1(length: 3, encoder: .lstm(hidden: 3, layers: 2)), kind: .classification)
        try check(.ptv1(length: 2, encoder: .mlp(hidden: 5)), kind: .tagging)
    }

    func testLoRAWithDropout() throws {
        try check(.lora(rank: 2, alpha: 4, dropout: 0.2, targets: ["query", "value", "output.dense", "pooler.dense"]),
                  kind: .classification)
    }

    func testLoRAWithEveryOption() throws {
        try check(MethodSpec(LoRAMethod(rank: 2, alpha: 4, dropout: 0.2, targets: .regex(#".*\.(query|intermediate\.dense)"#),
                                        rankPattern: ["query": 3], bias: .all, modulesToSave: ["pooler"], rsLoRA: true)),
                  kind: .classification)
        try check(MethodSpec(LoRAMethod(rank: 2, alpha: 4, targets: .list(["key", "dense"]), layers: [1],
                                        layersPattern: ["layer"], alphaPattern: ["key": 8], bias: .loraOnly)),
                  kind: .tagging)
    }

    func testIA3OnKeysValuesAndFeedForwardInputs() throws {
        try check(.ia3(), kind: .classification)
        try check(MethodSpec(IA3Method(targets: .list(["query", "intermediate.dense", "output.dense"]),
                                       feedForward: .list(["intermediate.dense"]), modulesToSave: ["pooler"])),
                  kind: .classification)
        try check(.ia3(), kind: .tagging)
    }

    func testPromptTuning() throws {
        try check(.prompt(length: 3), kind: .classification)
        try check(.prompt(length: 2), kind: .tagging)
    }

    func testFreezeAndFullFineTuning() throws {
        try check(.freeze(layers: 1, modules: .all), kind: .tagging)
        try check(.full, kind: .classification)
    }
}
