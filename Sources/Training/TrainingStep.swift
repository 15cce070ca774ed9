import Distributed
import Model
import Tasks
import Tuning

/// The training step of `train`, `pretrain` and `bench`: one global batch's gradients over the
/// ranks, their global norm clipped, then AdamW on the model's trainable parameters.
///
/// Data-parallel: every rank knows the global batch (`members`, in the same order everywhere);
/// each takes an equal share, pads it to the global batch's longest example so positions and
/// dropout masks match one process, divides its loss by the global number of labelled rows, and
/// the trainable gradients are then summed over the ranks, so every rank makes the update one
/// process would make on the whole batch.
public struct TrainingStep {
    public let model: TunedModel
    public let exchange: GradientExchange
    public let optimizer: AdamW
    /// The gradients' global norm is clipped to this (no clipping when it is 0).
    public let maxGradNorm: Float
    /// The token a rank's share is padded with.
    public let paddingId: Int32

    /// `optimizer` may hold more parameters than `model` trains (pretraining's heads of other
    /// tasks): a step updates the model's alone.
    public init(model: TunedModel, communicator: Communicator = SingleProcess(), optimizer: AdamW,
                maxGradNorm: Float, paddingId: Int32) {
        self.model = model
        exchange = GradientExchange(communicator: communicator, parameters: model.trainable)
        self.optimizer = optimizer
        self.maxGradNorm = maxGradNorm
        self.paddingId = paddingId
    }

    public struct Outcome {
        /// The global batch's mean loss and its real tokens.
        public let loss: Double
        public let tokens: Int
        /// The gradients' global norm before clipping.
        public let gradientNorm: Float
        /// Time spent clipping and updating.
        public internal(set) var optimizerSeconds = 0.0

        /// What was not a finite number, if anything; then nothing was updated. Loss and norm are
        /// global sums, the same on every rank, so every rank sees it and can stop with the others.
        public var nonFinite: String? {
            !loss.isFinite ? "the loss" : !gradientNorm.isFinite ? "the gradient's norm" : nil
        }
    }

    /// One step on `members` of `examples` (the global batch) at learning rate `lr`.
    /// `frozenCache` keeps the frozen layers' outputs of this rank's examples (see `BertEncoder.forward`).
    public func run(_ examples: [EncodedExample], kind: TaskKind, members: [Int], lr: Float,
                    dropoutSeed: UInt64, frozenCache: FrozenOutputCache? = nil) -> Outcome {
        let (loss, tokens) = computeGradients(examples, kind: kind, members: members,
                                              dropoutSeed: dropoutSeed, frozenCache: frozenCache)
        let clock = ContinuousClock(), start = clock.now
        let clipping = gradientClipping(model.trainable, maxNorm: maxGradNorm)
        var outcome = Outcome(loss: loss, tokens: tokens, gradientNorm: clipping.norm)
        if outcome.nonFinite == nil {
            optimizer.update(lr: lr, gradientScale: clipping.factor, only: model.trainable)
        }
        outcome.optimizerSeconds = (clock.now - start).seconds
        return outcome
    }

    /// Leaves in the trainable parameters the gradients one process would compute on the whole
    /// batch; returns the global mean loss and the global number of real tokens.
    private func computeGradients(_ examples: [EncodedExample], kind: TaskKind, members: [Int],
                                  dropoutSeed: UInt64, frozenCache: FrozenOutputCache?)
        -> (loss: Double, tokens: Int) {
        let communicator = exchange.communicator
        let share = Array(members[(members.count * communicator.rank / communicator.size)
                                  ..< (members.count * (communicator.rank + 1) / communicator.size)])
        let globalCount = max(members.reduce(0) { $0 + examples[$1].labelledCount }, 1)
        for parameter in exchange.parameters { parameter.gradient?.zero() }
        var local = [0.0, 0.0]   // Σ loss over counted rows, real tokens
        if !share.isEmpty {
            let batch = LabelledBatch(examples, members: share, kind: kind, paddingId: paddingId,
                                      length: members.map { examples[$0].inputIds.count }.max())
            model.forward(batch.tokens, dropoutSeed: dropoutSeed, frozenCache: frozenCache)
            let (loss, count) = model.head.loss(labels: batch.labels)
            model.backward(labels: batch.labels, normalizer: globalCount,
                           layerFinished: exchange.layerFinished)
            local = [Double(loss) * Double(count), Double(batch.tokens.tokenCount)]
        }
        exchange.sumGradients()
        communicator.allReduceSum(&local)
        return (local[0] / Double(globalCount), Int(local[1]))
    }
}

/// The dropout seed of a training step: the same on every rank.
public func stepSeed(_ seed: UInt64, _ step: Int) -> UInt64 { seed ^ (UInt64(step) &* 0xD1B5_4A32_D192_ED03) }
