import Kernels
import Model

/// A frozen pretrained encoder with its tuning components and a task head: the unit that
/// trains, predicts and saves. `parameters` holds everything by name; `trainable` is the
/// subset the optimizer, the gradient exchange and the adapter files iterate.
public final class TunedModel {
    public let weights: BertWeights
    public let encoder: BertEncoder
    public let components: [TuningComponent]
    public let head: TaskHead
    /// Every parameter: the base model's, the components' and the head's.
    public let parameters: Parameters
    private var output: EncoderOutput?
    private var dEncoder = Tensor(shape: [0])

    /// Components' and head's parameters become trainable; the base model's stay as the
    /// components left them (frozen unless Freeze or full fine-tuning unfroze them).
    public convenience init(weights: BertWeights, components: [TuningComponent], head: TaskHead) {
        self.init(encoder: BertEncoder(weights: weights), components: components, head: head)
    }

    /// A model on an existing encoder: several heads (multi-task pretraining) share one
    /// encoder's weights and buffers.
    public init(encoder: BertEncoder, components: [TuningComponent], head: TaskHead) {
        weights = encoder.weights
        self.components = components
        self.head = head
        self.encoder = encoder
        var all = weights.parameters
        for component in components { for parameter in component.parameters { all.add(parameter) } }
        for parameter in head.parameters { all.add(parameter) }
        for parameter in components.flatMap(\.parameters) + head.parameters { parameter.setTrainable(true) }
        parameters = all
    }

    /// The parameters that train, in a fixed order.
    public var trainable: [Parameter] { parameters.trainable }

    /// The most tokens a sequence may hold: the position table less the positions prompts take.
    public var maxTokens: Int { weights.config.maxPositions - (components.map(\.positionsBeforeTokens).max() ?? 0) }

    /// Checks that sequences of `maxLength` tokens fit the position table; the error names `option`.
    public func checkFits(maxLength: Int, option: String = "--max-length") throws {
        guard maxLength <= maxTokens else {
            throw InputError(option, "\(maxLength) tokens do not fit: the model has \(weights.config.maxPositions) "
                             + "positions and the prompt takes \(weights.config.maxPositions - maxTokens), so at most \(maxTokens)")
        }
    }

    /// Number of trainable scalars.
    public var trainableCount: Int { trainable.reduce(0) { $0 + $1.value.count } }

    /// Logits of `batch`: (B, labels) or, for tagging, (B, T, labels). Training when `dropoutSeed`
    /// is set; without `forBackward` (prediction) no activations are kept for a backward pass.
    /// `frozenCache` keeps the frozen layers' outputs across passes (see `BertEncoder.forward`).
    @discardableResult
    public func forward(_ batch: TokenBatch, dropoutSeed: UInt64? = nil, forBackward: Bool = true,
                        frozenCache: FrozenOutputCache? = nil) -> Tensor {
        var prompts = Prompts.none
        for component in components { component.addPrompts(to: &prompts, dropoutSeed: dropoutSeed) }
        // A classification head reads only the pooled position 0, so the top layer computes no other.
        let output = encoder.forward(batch, prompts: prompts, dropoutSeed: dropoutSeed, forBackward: forBackward,
                                     positions: head.kind == .classification ? .first : .all, frozenCache: frozenCache)
        self.output = output
        return head.forward(output, masks: dropoutSeed.map { SequenceDropout(rate: 0, seed: $0, keys: batch.sequenceKeys) })
    }

    /// Mean cross-entropy of the last forward pass's logits (labels -100 ignored).
    public func loss(labels: [Int32]) -> Float { head.loss(labels: labels).loss }

    /// Backward of the mean cross-entropy of the last forward pass: accumulates into every
    /// trainable parameter's gradient (call `parameters.zeroGradients()` between steps).
    /// With `normalizer`, the mean is over that many labelled rows (a global batch's count);
    /// `layerFinished` hears of each encoder layer done (see `BertEncoder.backward`).
    public func backward(labels: [Int32], normalizer: Int? = nil, layerFinished: (Int) -> Void = { _ in }) {
        guard let output else { preconditionFailure("backward before forward") }
        let count = head.kind == .classification ? output.batch * output.channels
            : output.batch * output.length * output.channels
        if dEncoder.count != count { dEncoder = Tensor(shape: [count]) }
        head.backward(labels: labels, output: output, dEncoder: dEncoder, normalizer: normalizer)
        switch head.kind {
        case .classification: encoder.backward(dLastHiddenState: nil, dPooled: dEncoder.data, layerFinished: layerFinished)
        case .tagging: encoder.backward(dLastHiddenState: dEncoder.data, dPooled: nil, layerFinished: layerFinished)
        }
        for component in components.reversed() { component.backward() }
    }
}
