import Distributed
import Foundation
import Model
import Tasks
import Tuning

/// One split of a task, read and encoded.
public struct SplitData {
    public let spec: TaskSpec
    public let name: String
    public let examples: [Example]
    public let encoded: [EncodedExample]
    /// Examples that truncation shortened.
    public var truncatedCount: Int { encoded.filter(\.truncated).count }
    /// Real tokens of each example.
    public var lengths: [Int] { encoded.map(\.inputIds.count) }

    public init(spec: TaskSpec, split: String, encoder: ExampleEncoder) throws {
        self.spec = spec
        name = split
        examples = try spec.examples(split)
        encoded = examples.map(encoder.encode)
    }

    /// The batch of the given example indices, padded to their longest or to `length`.
    public func batch(_ members: [Int], paddingId: Int32, length: Int? = nil) -> LabelledBatch {
        LabelledBatch(encoded, members: members, kind: spec.kind, paddingId: paddingId, length: length)
    }
}

/// The metric that picks the best adapter: accuracy for classification, entity F1 for BIO
/// tagging (NER), token accuracy for other tagging (part of speech).
public func primaryMetric(_ spec: TaskSpec) -> String {
    switch spec.kind {
    case .classification: "accuracy"
    case .tagging: spec.labels.contains { $0.hasPrefix("B-") } ? "entity_f1" : "token_accuracy"
    }
}

/// Predicts every example of `data` and scores the predictions: accuracy and macro-F1 for
/// classification; token accuracy, and for BIO tags entity-level precision, recall and F1, for tagging
/// (words that truncation cut off are left out). Returns the scores and the predictions
/// (one label, or one tag per kept word, per example). With several ranks each predicts a
/// share of the batches and every rank gets all predictions, so all compute the same scores.
public func evaluate(_ model: TunedModel, on data: SplitData, batchSize: Int, paddingId: Int32,
                     communicator: Communicator = SingleProcess()) -> (scores: Scores, predictions: [[Int]]) {
    var predictions = [[Int]](repeating: [], count: data.encoded.count)
    let labels = model.head.labelCount
    let batches = Batching.evaluationBatches(lengths: data.lengths, batchSize: batchSize)
    for (number, members) in batches.enumerated() where number % communicator.size == communicator.rank {
        let batch = data.batch(members, paddingId: paddingId)
        let logits = model.forward(batch.tokens, forBackward: false)
        func argmax(_ row: Int) -> Int {
            let base = logits.data + row * labels
            return (0..<labels).max { base[$0] < base[$1] }!
        }
        for (b, index) in members.enumerated() {
            switch data.spec.kind {
            case .classification: predictions[index] = [argmax(b)]
            case .tagging: predictions[index] = data.encoded[index].wordStarts.map { argmax(b * batch.tokens.length + $0) }
            }
        }
    }
    if communicator.size > 1 {
        // Each rank sends [index, prediction…] rows for the batches it predicted.
        let mine = batches.enumerated().filter { $0.offset % communicator.size == communicator.rank }
            .flatMap { $0.element }.map { [$0] + predictions[$0] }
        for shard in communicator.allGather(try! JSONSerialization.data(withJSONObject: mine)) {
            for row in (try? JSONSerialization.jsonObject(with: shard)) as? [[Int]] ?? [] {
                predictions[row[0]] = Array(row.dropFirst())
            }
        }
    }
    switch data.spec.kind {
    case .classification:
        return (Metrics.classification(gold: data.examples.map(\.label), predicted: predictions.map { $0[0] }), predictions)
    case .tagging:
        let gold = zip(data.examples, predictions).map { Array($0.tags.prefix($1.count)) }
        var scores: Scores = ["token_accuracy": Metrics.tokenAccuracy(gold: gold, predicted: predictions)]
        if primaryMetric(data.spec) == "entity_f1" {
            let names = { (tags: [[Int]]) in tags.map { $0.map { data.spec.labels[$0] } } }
            scores.merge(Metrics.entities(gold: names(gold), predicted: names(predictions))) { $1 }
        }
        return (scores, predictions)
    }
}
