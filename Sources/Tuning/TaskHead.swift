import Kernels
import Model

/// What a head predicts.
public enum TaskKind: String, Codable, Sendable {
    /// One label per text, from the pooled [CLS] output (PEFT's SEQ_CLS).
    case classification
    /// One tag per word piece, from every token's last hidden state (PEFT's TOKEN_CLS).
    case tagging
}

/// A linear head as P-tuning v2 uses (no verbalizer): dropout, then `classifier`
/// (C → labels) on the pooled output or on every real token's hidden state.
public final class TaskHead {
    public let kind: TaskKind
    public let classifier: Linear
    public let dropoutRate: Float
    public var labelCount: Int { classifier.outFeatures }
    public let parameters: [Parameter]
    private var logits = Tensor(shape: [0])
    private var features = Tensor(shape: [0])      // the classifier's input, after dropout
    private var dFeatures = Tensor(shape: [0])
    private var dLogits = Tensor(shape: [0])
    private var rows = 0
    private var dropout: SequenceDropout?

    /// A head of `labels` outputs, weights drawn from N(0, 0.02²) (BERT's initializer) and zero bias.
    public init(kind: TaskKind, labels: Int, hiddenSize: Int, dropout: Float, seed: UInt64) {
        self.kind = kind
        dropoutRate = dropout
        var registry = Parameters()
        classifier = Linear("classifier", inFeatures: hiddenSize, outFeatures: labels, in: &registry)
        var random = SplitMix(seed: seed)
        for i in 0..<classifier.weight.value.count { classifier.weight.value[i] = 0.02 * random.normal() }
        parameters = registry.all
    }

    /// Logits (B, labels) or, for tagging, (B, T, labels) over the real tokens' positions;
    /// valid until the next call. `masks` (training only) is where the dropout masks come from.
    public func forward(_ output: EncoderOutput, masks: SequenceDropout?) -> Tensor {
        let (C, span) = (output.channels, rowsPerSequence(output))
        rows = output.batch * span
        if features.count < rows * C {
            features = Tensor(shape: [rows, C]); dFeatures = Tensor(shape: [rows, C])
        }
        if logits.count != rows * labelCount {
            logits = Tensor(shape: kind == .classification ? [rows, labelCount] : [output.batch, span, labelCount])
            dLogits = Tensor(shape: logits.shape)
        }
        dropout = masks?.site(0x4845_4144).rate(dropoutRate)
        for b in 0..<output.batch {
            let source = encoderRow(output, b) * C, target = features.data + b * span * C
            if let dropout {
                dropoutForward(out: target, inp: encoderFeatures(output) + source, count: span * C, dropout: dropout.sequence(b))
            } else {
                target.update(from: encoderFeatures(output) + source, count: span * C)
            }
        }
        classifier.forward(out: logits.data, inp: features.data, rows: rows)
        return logits
    }

    /// Mean cross-entropy of the last logits against `labels` (one a row, -100 ignored)
    /// and how many rows counted.
    public func loss(labels: [Int32]) -> (loss: Float, count: Int) {
        precondition(labels.count == rows, "\(labels.count) labels for \(rows) rows")
        return labels.withUnsafeBufferPointer {
            crossEntropyForward(logits: logits.data, targets: $0.baseAddress!, rows: rows, classes: labelCount)
        }
    }

    /// Backward of the mean cross-entropy: accumulates into the classifier's gradients and
    /// writes the gradient of the encoder output the head read into `dEncoder`: (B, C) for
    /// classification, (B, T, C) for tagging with prompt positions zero. The mean is over
    /// `normalizer` rows when given (a rank's share of a global batch divides by the global count).
    public func backward(labels: [Int32], output: EncoderOutput, dEncoder: Tensor, normalizer: Int? = nil) {
        let (C, span) = (output.channels, rowsPerSequence(output))
        let count: Int = normalizer ?? labels.reduce(0) { $0 + ($1 == -100 ? 0 : 1) }
        dLogits.zero()
        if count > 0 {
            labels.withUnsafeBufferPointer {
                crossEntropyBackward(dlogits: dLogits.data, logits: logits.data, targets: $0.baseAddress!, rows: rows,
                                     classes: labelCount, scale: 1 / Float(count))
            }
        }
        dFeatures.zero()
        classifier.backward(dinp: dFeatures.data, dout: dLogits.data, inp: features.data, rows: rows)
        dEncoder.zero()
        for b in 0..<output.batch {
            let target = dEncoder.data + encoderRow(output, b) * C, source = dFeatures.data + b * span * C
            if let dropout {
                dropoutBackward(dinp: target, dout: source, count: span * C, dropout: dropout.sequence(b))
            } else {
                accumulate(into: target, source, count: span * C)
            }
        }
    }

    /// Rows the head reads per sequence: the pooled row, or every real token.
    private func rowsPerSequence(_ output: EncoderOutput) -> Int {
        kind == .classification ? 1 : output.length - output.promptPositions
    }

    /// The encoder output the head reads: pooled (B, C) or last hidden state (B, T, C).
    private func encoderFeatures(_ output: EncoderOutput) -> UnsafePointer<Float> {
        kind == .classification ? output.pooled : output.lastHiddenState
    }

    /// First row of sequence b's features within `encoderFeatures`.
    private func encoderRow(_ output: EncoderOutput, _ b: Int) -> Int {
        kind == .classification ? b : b * output.length + output.promptPositions
    }
}
