import Distributed
import Model
import Tasks
import Tuning

/// One data-parallel gradient computation over a global batch.
///
/// Every rank knows the global batch (`members`, in the same order everywhere); each takes
/// an equal share, pads it to the global batch's longest example so positions and dropout
/// masks match one process, divides its loss by the global number of labelled rows, and the
/// trainable gradients are then summed over the ranks. The gradients left in `exchange`'s
/// parameters are those one process would compute on the whole batch.
/// Returns the global mean loss and the global number of real tokens. `frozenCache` keeps the
/// frozen layers' outputs of this rank's examples (see `BertEncoder.forward`).
public func computeGradients(
    _ model: TunedModel, on data: SplitData, members: [Int], exchange: GradientExchange,
    paddingId: Int32, dropoutSeed: UInt64, frozenCache: FrozenOutputCache? = nil
) -> (loss: Double, tokens: Int) {
    let communicator = exchange.communicator
    let share = Array(members[(members.count * communicator.rank / communicator.size)
                              ..< (members.count * (communicator.rank + 1) / communicator.size)])
    let globalCount = max(members.reduce(0) { $0 + data.encoded[$1].labelledCount }, 1)
    for parameter in exchange.parameters { parameter.gradient?.zero() }
    var local = [0.0, 0.0]   // Σ loss over counted rows, real tokens
    if !share.isEmpty {
        let batch = data.batch(share, paddingId: paddingId, length: members.map { data.lengths[$0] }.max())
        model.forward(batch.tokens, dropoutSeed: dropoutSeed, frozenCache: frozenCache)
        let (loss, count) = model.head.loss(labels: batch.labels)
        model.backward(labels: batch.labels, normalizer: globalCount, layerFinished: exchange.layerFinished)
        local = [Double(loss) * Double(count), Double(batch.tokens.tokenCount)]
    }
    exchange.sumGradients()
    communicator.allReduceSum(&local)
    return (local[0] / Double(globalCount), Int(local[1]))
}

/// The dropout seed of a training step: the same on every rank.
public func stepSeed(_ seed: UInt64, _ step: Int) -> UInt64 { seed ^ (UInt64(step) &* 0xD1B5_4A32_D192_ED03) }
