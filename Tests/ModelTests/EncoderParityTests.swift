import Kernels
import Model
import TestSupport
import XCTest

/// The encoder against the reference `BertModel` outputs on a padded batch.
final class EncoderParityTests: XCTestCase {
    func testLastHiddenStateAndPoolerMatchTheReference() throws {
        let model = try PretrainedModel(folder: try pretrainedModelFolder())
        let reference = try SafeTensorsFile(path: fixture("encoder.safetensors"))
        let shape = try reference.info("input_ids").shape
        let (B, T, C) = (shape[0], shape[1], model.config.hiddenSize)
        let batch = TokenBatch(
            batch: B, length: T, inputIds: try reference.int32s("input_ids"),
            tokenTypeIds: try reference.int32s("token_type_ids"),
            attentionMask: try reference.int32s("attention_mask").map(Float.init))
        XCTAssertLessThan(batch.tokenCount, B * T, "the reference batch must include padding")
        let output = BertEncoder(weights: model.weights).forward(batch)
        let hidden = try reference.tensor("last_hidden_state"), pooled = try reference.tensor("pooler_output")
        var worstHidden: Float = 0, worstPooled: Float = 0
        for i in 0..<(B * T * C) { worstHidden = max(worstHidden, abs(output.lastHiddenState[i] - hidden[i])) }
        for i in 0..<(B * C) { worstPooled = max(worstPooled, abs(output.pooled[i] - pooled[i])) }
        XCTAssertLessThan(worstHidden, 1e-4)
        XCTAssertLessThan(worstPooled, 1e-4)
    }

    func testPaddingDoesNotChangeRealTokensOutputs() throws {
        let model = try PretrainedModel(folder: try pretrainedModelFolder())
        let encoder = BertEncoder(weights: model.weights)
        let short = model.tokenizer.encode("A short one.")
        let long = model.tokenizer.encode("A much longer sentence that forces padding on the short one.")
        let alone = encoder.forward(TokenBatch(encodings: [short])).hidden(0, 0)
        let padded = encoder.forward(TokenBatch(encodings: [short, long])).hidden(0, 0)
        for (a, b) in zip(alone, padded) { XCTAssertEqual(a, b, accuracy: 1e-5) }
    }

    func testDropoutChangesOutputsOnlyInTraining() throws {
        let model = try PretrainedModel(folder: try pretrainedModelFolder())
        let encoder = BertEncoder(weights: model.weights)
        let batch = TokenBatch(encodings: [model.tokenizer.encode("Dropout is seeded.")])
        let eval = encoder.forward(batch).pooledOutput(0)
        let trainA = encoder.forward(batch, dropoutSeed: 1).pooledOutput(0)
        let trainB = encoder.forward(batch, dropoutSeed: 1).pooledOutput(0)
        let trainC = encoder.forward(batch, dropoutSeed: 2).pooledOutput(0)
        XCTAssertEqual(trainA, trainB)
        XCTAssertNotEqual(trainA, trainC)
        XCTAssertNotEqual(eval, trainA)
        XCTAssertEqual(encoder.forward(batch).pooledOutput(0), eval)
    }
}
