import Kernels
import Model
import TestSupport
import Tuning
import XCTest

final class TrainingCheckpointTests: XCTestCase {
    private func model(seed: UInt64) throws -> TunedModel {
        let weights = tinyRandomBert(seed: 1)
        let spec = MethodSpec.ptv1(length: 3, encoder: .lstm(hidden: 3, layers: 2))
        return TunedModel(weights: weights, components: try spec.components(weights: weights, seed: seed),
                          head: TaskHead(kind: .classification, labels: 3, hiddenSize: 8, dropout: 0.1, seed: seed))
    }

    func testCheckpointRestoresTheEncoderWeightsStateAndStep() throws {
        let path = try temporaryFolder(self) + "/checkpoint.safetensors"
        let original = try model(seed: 5)
        let moment = Tensor(shape: [2, 2], values: [1, 2, 3, 4])
        try TrainingCheckpoint.write(original, state: [("adam.m.x", moment)], metadata: ["step": "17"], to: path)
        let restored = try model(seed: 6)
        XCTAssertNotEqual(restored.forward(tinyBatch).array, original.forward(tinyBatch).array)
        let (state, metadata) = try TrainingCheckpoint.read(path, into: restored)
        XCTAssertEqual(restored.forward(tinyBatch).array, original.forward(tinyBatch).array)
        XCTAssertTrue(restored.trainable.contains { $0.name == "prompt_encoder.lstm_head.weight_hh_l1_reverse" },
                      "the LSTM, which PEFT's adapter drops, is in the checkpoint")
        XCTAssertEqual(state["adam.m.x"]?.array, [1, 2, 3, 4])
        XCTAssertEqual(metadata["step"], "17")
    }

    func testCheckpointOfAnotherMethodIsRejectedAndChangesNothing() throws {
        let path = try temporaryFolder(self) + "/checkpoint.safetensors"
        let weights = tinyRandomBert(seed: 1)
        let lora = TunedModel(weights: weights, components: try MethodSpec.lora(rank: 2, alpha: 4, dropout: 0, targets: ["query"])
            .components(weights: weights, seed: 1), head: TaskHead(kind: .classification, labels: 3, hiddenSize: 8, dropout: 0, seed: 1))
        try TrainingCheckpoint.write(lora, to: path)
        let target = try model(seed: 5)
        let before = target.forward(tinyBatch).array
        XCTAssertThrowsError(try TrainingCheckpoint.read(path, into: target)) { error in
            XCTAssert("\(error)".contains("missing tensor 'param.prompt_encoder.embedding.weight'"), "\(error)")
        }
        XCTAssertEqual(target.forward(tinyBatch).array, before)
    }
}
