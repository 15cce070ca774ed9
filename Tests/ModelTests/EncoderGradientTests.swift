import Kernels
import Model
import TestSupport
import XCTest

/// The encoder's backward pass against finite differences, on a tiny random BERT,
/// with dropout on, padding in the batch, and every kind of attachment.
final class EncoderGradientTests: XCTestCase {
    private let config = tinyRandomBert(seed: 0).config
    private let batch = tinyBatch

    private func randomWeights(seed: UInt64) -> BertWeights { tinyRandomBert(seed: seed) }

    /// Runs forward and backward with a loss Σ hidden·u + Σ pooled·w, then checks each parameter's gradient.
    private func check(_ encoder: BertEncoder, prompts: Prompts = .none, parameters: [Parameter], line: UInt = #line) {
        var random = SeededRandom(seed: 99)
        let P = prompts.inputEmbeddings?.shape[0] ?? 0
        let hiddenWeights = random.tensor([batch.batch, batch.length + P, config.hiddenSize])
        let pooledWeights = random.tensor([batch.batch, config.hiddenSize])
        let loss = { () -> Double in
            let output = encoder.forward(self.batch, prompts: prompts, dropoutSeed: 7)
            return weightedSum(output.lastHiddenState, hiddenWeights) + weightedSum(output.pooled, pooledWeights)
        }
        encoder.weights.parameters.zeroGradients()
        for parameter in parameters { parameter.gradient?.zero() }
        _ = loss()
        encoder.backward(dLastHiddenState: hiddenWeights.data, dPooled: pooledWeights.data)
        for parameter in parameters {
            guard let gradient = parameter.gradient else { return XCTFail("\(parameter.name) is not trainable", line: line) }
            let analytic = Tensor(shape: gradient.shape)
            analytic.copy(from: gradient)
            checkGradient(parameter.name, input: parameter.value, analytic: analytic, epsilon: 1e-2, tolerance: 2e-2,
                          line: line, loss: loss)
        }
    }

    func testFullFineTuningGradientsMatch() {
        let weights = randomWeights(seed: 1)
        for parameter in weights.parameters.all { parameter.setTrainable(true) }
        let names = ["embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
                     "embeddings.token_type_embeddings.weight", "embeddings.LayerNorm.weight",
                     "encoder.layer.0.attention.self.query.weight", "encoder.layer.0.attention.self.key.bias",
                     "encoder.layer.0.attention.self.value.weight", "encoder.layer.0.attention.output.dense.weight",
                     "encoder.layer.0.attention.output.LayerNorm.bias", "encoder.layer.1.intermediate.dense.weight",
                     "encoder.layer.1.output.dense.bias", "encoder.layer.1.output.LayerNorm.weight", "pooler.dense.weight"]
        check(BertEncoder(weights: weights), parameters: names.map { weights.parameters[$0]! })
    }

    func testDeepPromptAndLowRankGradientsMatchWithTheBaseFrozen() {
        let weights = randomWeights(seed: 2)
        var random = SeededRandom(seed: 3)
        let prompt = Parameter("prompt", random.tensor([3, 2 * 2 * 8]))
        prompt.setTrainable(true)
        var lowRank: [Parameter] = []
        for (index, linear) in [weights.layers[0].query, weights.layers[1].output, weights.pooler].enumerated() {
            let a = Parameter("a\(index)", random.tensor([2, linear.inFeatures]))
            let b = Parameter("b\(index)", random.tensor([linear.outFeatures, 2]))
            a.setTrainable(true); b.setTrainable(true)
            linear.lowRank = LowRankUpdate(a: a, b: b, scale: 2, dropoutRate: 0.2)
            lowRank += [a, b]
        }
        check(BertEncoder(weights: weights), prompts: Prompts(keyValues: prompt), parameters: [prompt] + lowRank)
        XCTAssertTrue(weights.parameters.trainable.isEmpty, "the base stays frozen")
    }

    func testInputPromptGradientMatches() {
        let weights = randomWeights(seed: 4)
        var random = SeededRandom(seed: 5)
        let prompt = Parameter("virtual", random.tensor([2, 8]))
        prompt.setTrainable(true)
        weights.wordEmbeddings.setTrainable(true)
        check(BertEncoder(weights: weights), prompts: Prompts(inputEmbeddings: prompt),
              parameters: [prompt, weights.wordEmbeddings])
    }

    func testFreezingStopsBackwardAtTheLowestTrainableLayer() {
        let weights = randomWeights(seed: 6)
        let trainable = [weights.layers[1].intermediate.weight, weights.layers[1].output.weight]
        for parameter in trainable { parameter.setTrainable(true) }
        check(BertEncoder(weights: weights), parameters: trainable)
        XCTAssertEqual(weights.parameters.trainable.map(\.name),
                       ["encoder.layer.1.intermediate.dense.weight", "encoder.layer.1.output.dense.weight"])
    }

    func testFrozenLayersRunInChunksOfSequencesWithTheSameResults() {
        let weights = randomWeights(seed: 8)
        let top = weights.parameters.all.filter { $0.name.hasPrefix("encoder.layer.1.") }
        for parameter in top { parameter.setTrainable(true) }
        let whole = BertEncoder(weights: weights), chunked = BertEncoder(weights: weights)
        chunked.frozenChunkTokens = 1   // one sequence per chunk through layer 0
        var random = SeededRandom(seed: 5)
        let dHidden = random.tensor([batch.batch, batch.length, config.hiddenSize])
        var results: [[Float]] = []
        for encoder in [whole, chunked] {
            for forBackward in [false, true] {
                let output = encoder.forward(batch, dropoutSeed: 3, forBackward: forBackward)
                results.append((0..<batch.batch).flatMap { b in (0..<batch.length).flatMap { output.hidden(b, $0) } })
            }
            weights.parameters.zeroGradients()
            encoder.backward(dLastHiddenState: dHidden.data, dPooled: nil)
            results.append(top.flatMap { $0.gradient!.array })
        }
        XCTAssertEqual(results[0], results[1], "predicting and training give the same outputs")
        for (index, what) in ["prediction", "training output", "gradients"].enumerated() {
            XCTAssertEqual(results[index].count, results[index + 3].count)
            for (x, y) in zip(results[index], results[index + 3]) { XCTAssertEqual(x, y, accuracy: 1e-5, what) }
        }
    }

    /// `.first` (what a classification head asks for) computes only position 0 at the top layer:
    /// the same pooled output, position-0 hidden state and gradients as computing every position,
    /// with dropout on, for full fine-tuning (gradient below the top layer), deep prompts with
    /// LoRA, a trainable top layer alone, and prediction (the top layer among the chunked ones).
    func testComputingOnlyPositionZeroAtTheTopGivesTheSameResults() {
        var random = SeededRandom(seed: 12)
        let dPooled = random.tensor([batch.batch, config.hiddenSize])
        let setups: [(String, (BertWeights) -> Prompts)] = [
            ("full", { weights in
                for parameter in weights.parameters.all { parameter.setTrainable(true) }
                return .none
            }),
            ("deep prompt and LoRA", { weights in
                var random = SeededRandom(seed: 13)
                for (index, linear) in [weights.layers[1].query, weights.layers[1].value].enumerated() {
                    let a = Parameter("a\(index)", random.tensor([2, linear.inFeatures]))
                    let b = Parameter("b\(index)", random.tensor([linear.outFeatures, 2]))
                    a.setTrainable(true); b.setTrainable(true)
                    linear.lowRank = LowRankUpdate(a: a, b: b, scale: 2, dropoutRate: 0.2)
                }
                let prompt = Parameter("prompt", random.tensor([3, 2 * 2 * 8]))
                prompt.setTrainable(true)
                return Prompts(keyValues: prompt)
            }),
            ("top layer", { weights in
                for parameter in weights.parameters.all where parameter.name.hasPrefix("encoder.layer.1.") {
                    parameter.setTrainable(true)
                }
                return .none
            }),
        ]
        for (name, setup) in setups {
            let weights = randomWeights(seed: 9)
            let prompts = setup(weights)
            let trainable = weights.parameters.trainable + [prompts.keyValues].compactMap { $0 }
                + weights.layers.compactMap(\.query.lowRank).flatMap { [$0.a, $0.b] }
                + weights.layers.compactMap(\.value.lowRank).flatMap { [$0.a, $0.b] }
            var results: [[[Float]]] = []
            for positions in [OutputPositions.all, .first] {
                let encoder = BertEncoder(weights: weights)
                let predicted = encoder.forward(batch, prompts: prompts, forBackward: false, positions: positions)
                var result = [(0..<batch.batch).flatMap { predicted.pooledOutput($0) + predicted.hidden($0, 0) }]
                let output = encoder.forward(batch, prompts: prompts, dropoutSeed: 4, positions: positions)
                XCTAssertEqual(output.length, positions == .all ? batch.length : 1, name)
                result.append((0..<batch.batch).flatMap { output.pooledOutput($0) + output.hidden($0, 0) })
                for parameter in trainable { parameter.gradient?.zero() }
                encoder.backward(dLastHiddenState: nil, dPooled: dPooled.data)
                result.append(trainable.flatMap { $0.gradient!.array })
                results.append(result)
            }
            for (index, what) in ["prediction", "training output", "gradients"].enumerated() {
                XCTAssertEqual(results[0][index].count, results[1][index].count, "\(name): \(what)")
                XCTAssertTrue(results[0][index].contains { $0 != 0 }, "\(name): \(what)")
                for (x, y) in zip(results[0][index], results[1][index]) {
                    XCTAssertEqual(x, y, accuracy: 1e-5 * max(1, abs(x)), "\(name): \(what)")
                }
            }
        }
    }

    /// Buffers planned for one kind of pass are grown to serve another (prompts or none, one
    /// position or all): after a mix of passes an encoder computes what a fresh one does.
    func testBuffersPlannedForOneKindOfPassServeAnother() {
        let weights = randomWeights(seed: 10)
        for parameter in weights.parameters.all { parameter.setTrainable(true) }
        var random = SeededRandom(seed: 14)
        let prompt = Parameter("prompt", random.tensor([3, 2 * 2 * 8]))
        prompt.setTrainable(true)
        let dPooled = random.tensor([batch.batch, config.hiddenSize])
        let passes: [(Prompts, OutputPositions)] = [(Prompts(keyValues: prompt), .first), (.none, .all),
                                                    (Prompts(keyValues: prompt), .all), (.none, .first)]
        let mixed = BertEncoder(weights: weights)
        for (index, (prompts, positions)) in passes.enumerated() {
            var results: [[Float]] = []
            for encoder in [mixed, BertEncoder(weights: weights)] {
                let output = encoder.forward(batch, prompts: prompts, dropoutSeed: 6, positions: positions)
                var result = (0..<batch.batch).flatMap { output.pooledOutput($0) }
                weights.parameters.zeroGradients()
                prompt.gradient!.zero()
                encoder.backward(dLastHiddenState: nil, dPooled: dPooled.data)
                result += weights.parameters.trainable.flatMap { $0.gradient!.array } + prompt.gradient!.array
                results.append(result)
            }
            XCTAssertEqual(results[0], results[1], "pass \(index)")
        }
    }

    /// With a frozen-output cache, layer 0 (below the trainable top layer) runs without dropout,
    /// once per sequence key; a later pass reads it back, in another batch with other padding, and
    /// gives what computing it there gives: the real positions' outputs and the gradients.
    func testFrozenOutputCacheGivesWhatComputingGives() {
        let weights = randomWeights(seed: 11)
        let top = weights.parameters.all.filter { $0.name.hasPrefix("encoder.layer.1.") }
        for parameter in top { parameter.setTrainable(true) }
        let first = Encoding(inputIds: [1, 5, 7, 2], tokenTypeIds: [0, 0, 0, 0])
        let second = Encoding(inputIds: [1, 9, 2], tokenTypeIds: [0, 0, 0])
        let together = TokenBatch(encodings: [first, second], sequenceKeys: [11, 12])
        let alone = TokenBatch(encodings: [second], length: 5, sequenceKeys: [12])

        let training = FrozenOutputCache(), evaluation = FrozenOutputCache()
        let encoder = BertEncoder(weights: weights)
        encoder.forward(together, dropoutSeed: 5, frozenCache: training)
        BertEncoder(weights: weights).forward(together, frozenCache: evaluation)
        XCTAssertEqual(training.count, 2)
        XCTAssertEqual(training.floats, 7 * config.hiddenSize, "real positions only")
        for key: UInt64 in [11, 12] {
            XCTAssertNotNil(training.output(of: key))
            XCTAssertEqual(training.output(of: key), evaluation.output(of: key), "no dropout below the trainable layer")
        }

        var random = SeededRandom(seed: 15)
        let dPooled = random.tensor([1, config.hiddenSize]), dHidden = random.tensor([1, 5, config.hiddenSize])
        for i in (3 * config.hiddenSize)..<dHidden.count { dHidden[i] = 0 }   // padding: no loss reads it
        var results: [[Float]] = []
        for (encoder, cache) in [(encoder, training), (BertEncoder(weights: weights), FrozenOutputCache())] {
            let output = encoder.forward(alone, dropoutSeed: 7, frozenCache: cache)
            var result = output.pooledOutput(0) + (0..<3).flatMap { output.hidden(0, $0) }
            weights.parameters.zeroGradients()
            encoder.backward(dLastHiddenState: dHidden.data, dPooled: dPooled.data)
            result += top.flatMap { $0.gradient!.array }
            results.append(result)
        }
        XCTAssertEqual(results[0].count, results[1].count)
        for (x, y) in zip(results[0], results[1]) { XCTAssertEqual(x, y, accuracy: 1e-5 * max(1, abs(x))) }
    }

    func testMergedLowRankUpdateGivesTheSameOutputs() {
        let weights = randomWeights(seed: 7)
        var random = SeededRandom(seed: 8)
        let linear = weights.layers[0].value
        linear.lowRank = LowRankUpdate(a: Parameter("a", random.tensor([2, 8])), b: Parameter("b", random.tensor([8, 2])),
                                       scale: 2)
        let encoder = BertEncoder(weights: weights)
        let unmerged = encoder.forward(batch).pooledOutput(0)
        let original = linear.weight.value.array
        linear.merge()
        XCTAssertNil(linear.lowRank)
        let merged = encoder.forward(batch).pooledOutput(0)
        for (a, b) in zip(unmerged, merged) { XCTAssertEqual(a, b, accuracy: 1e-5) }
        linear.unmerge()
        for (a, b) in zip(original, linear.weight.value.array) { XCTAssertEqual(a, b, accuracy: 1e-6) }
    }
}

/// What data parallelism relies on: in training, a sequence's outputs depend on its own key,
/// not on the batch it sits in, as long as the batch pads to the same length.
final class SequenceDropoutTests: XCTestCase {
    func testASequenceDropsTheSameWhateverItsBatch() {
        let encoder = BertEncoder(weights: tinyRandomBert(seed: 3, dropout: 0.3))
        let first = Encoding(inputIds: [1, 5, 7, 2], tokenTypeIds: [0, 0, 0, 0])
        let second = Encoding(inputIds: [1, 9, 2], tokenTypeIds: [0, 0, 0])
        let together = encoder.forward(TokenBatch(encodings: [first, second], sequenceKeys: [11, 12]), dropoutSeed: 5)
            .pooledOutput(1)
        let alone = encoder.forward(TokenBatch(encodings: [second], length: 4, sequenceKeys: [12]), dropoutSeed: 5)
            .pooledOutput(0)
        // Not bit for bit: the matrix library may block a product of 2 rows differently from 1
        // (oneDNN's AVX2 gemm does), which moves the last bits; another mask moves far more.
        let otherKey = encoder.forward(TokenBatch(encodings: [second], length: 4, sequenceKeys: [13]), dropoutSeed: 5)
            .pooledOutput(0)
        let largestDifference = { (a: [Float], b: [Float]) in zip(a, b).map { abs($0 - $1) }.max() ?? 0 }
        XCTAssertEqual(together.count, alone.count)
        XCTAssertLessThan(largestDifference(together, alone), 1e-5)
        XCTAssertGreaterThan(largestDifference(alone, otherKey), 1e-2)
    }
}
