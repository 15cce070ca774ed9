import Kernels
import Model

/// A tiny BERT (vocabulary 12, hidden 8, 2 layers of 2 heads, FF 16) with random weights,
/// for finite-difference checks that need a whole model but not a real one.
public func tinyRandomBert(seed: UInt64, dropout: Float = 0.1) -> BertWeights {
    let config = BertConfig(vocabSize: 12, hiddenSize: 8, layers: 2, heads: 2, intermediateSize: 16, maxPositions: 16,
                            hiddenDropout: dropout, attentionDropout: dropout)
    var random = SplitMix(seed: seed)
    let weights = BertWeights(config: config)
    for parameter in weights.parameters.all { parameter.value.copy(from: random.tensor(parameter.shape, -0.5...0.5)) }
    for layer in weights.layers {
        for norm in [layer.attentionNorm, layer.outputNorm] { norm.weight.value.buffer.update(repeating: 1) }
    }
    return weights
}

/// Two sequences of four tokens for the tiny BERT, the second padded by one.
public let tinyBatch = TokenBatch(batch: 2, length: 4, inputIds: [1, 5, 7, 2, 1, 9, 2, 0],
                                  tokenTypeIds: [0, 0, 1, 1, 0, 0, 0, 0], attentionMask: [1, 1, 1, 1, 1, 1, 1, 0])
