import Distributed
import Foundation
import Kernels
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

    private init(spec: TaskSpec, name: String, examples: [Example], encoded: [EncodedExample]) {
        (self.spec, self.name, self.examples, self.encoded) = (spec, name, examples, encoded)
    }

    /// A random share of the examples (at least one), in their order: few-shot training. The draw
    /// depends on the seed and the task's name only, so pretraining and adaptation of one run,
    /// which share the seed, train on the same examples of a task.
    public func sample(fraction: Double, seed: UInt64) -> SplitData {
        guard fraction < 1 else { return self }
        var random = SplitMix(seed: spec.name.utf8.reduce(seed ^ 0x5EED_F4AC_7104) { ($0 ^ UInt64($1)) &* 0x100_0000_01B3 })
        let kept = max(1, Int((fraction * Double(examples.count)).rounded()))
        let chosen = Array(examples.indices).shuffled(using: &random).prefix(kept).sorted()
        return SplitData(spec: spec, name: name, examples: chosen.map { examples[$0] }, encoded: chosen.map { encoded[$0] })
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
/// With a `progressLabel`, rank 0 shows how far it is (a bar on a terminal, a line each quarter otherwise).
public func evaluate(_ model: TunedModel, on data: SplitData, batchSize: Int, paddingId: Int32,
                     communicator: Communicator = SingleProcess(), progressLabel: String? = nil) throws
    -> (scores: Scores, predictions: [[Int]]) {
    var predictions = [[Int]](repeating: [], count: data.encoded.count)
    let labels = model.head.labelCount
    let batches = Batching.evaluationBatches(lengths: data.lengths, batchSize: batchSize)
    let progress = progressLabel.map {
        Progress(total: batches.count, label: "\($0) \(data.name) (\(data.examples.count) examples)", quiet: !communicator.isRoot,
                 unit: "batch")
    }
    defer { progress?.finish() }
    for (number, members) in batches.enumerated() where number % communicator.size == communicator.rank {
        // A log line at the start and, when it is long enough to matter, at each quarter.
        let quarter = batches.count >= 16 ? batches.count / 4 : batches.count
        progress?.update(number, status: "scoring", force: number % quarter == 0)
        let batch = data.batch(members, paddingId: paddingId)
        let logits = model.forward(batch.tokens, forBackward: false)
        // A NaN has no argmax: scoring it would report a number for a broken model.
        guard logits.isFinite else {
            throw InputError((try? data.spec.file(data.name)) ?? data.name, "the model computes non-finite logits (NaN or infinity) on this split; "
                             + "its weights are broken or diverged")
        }
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
    return (scores(data.spec, examples: data.examples, predictions: predictions), predictions)
}

/// The task's metrics of `predictions` (one label, or one tag per word, per example; a tagging
/// prediction shorter than its sentence scores only the words it covers).
func scores(_ spec: TaskSpec, examples: [Example], predictions: [[Int]]) -> Scores {
    switch spec.kind {
    case .classification:
        return Metrics.classification(gold: examples.map(\.label), predicted: predictions.map { $0[0] })
    case .tagging:
        let gold = zip(examples, predictions).map { Array($0.tags.prefix($1.count)) }
        var scores: Scores = ["token_accuracy": Metrics.tokenAccuracy(gold: gold, predicted: predictions)]
        if primaryMetric(spec) == "entity_f1" {
            let names = { (tags: [[Int]]) in tags.map { $0.map { spec.labels[$0] } } }
            scores.merge(Metrics.entities(gold: names(gold), predicted: names(predictions))) { $1 }
        }
        return scores
    }
}

/// What a task scores without reading context, the yardstick an adapter must beat: classification
/// always answers the most frequent training label; tagging gives each word its most frequent
/// training tag (a word never seen in training, the most frequent tag overall), words told apart
/// only as the model can tell them (lowercased for an uncased model). Ties go to the lower label.
public func baselineScores(_ spec: TaskSpec, train: [Example], on examples: [Example], lowercase: Bool) -> Scores {
    let mostFrequent = { (counts: [Int: Int]) in counts.max { ($0.value, $1.key) < ($1.value, $0.key) }?.key ?? 0 }
    switch spec.kind {
    case .classification:
        let majority = mostFrequent(train.reduce(into: [:]) { $0[$1.label, default: 0] += 1 })
        return scores(spec, examples: examples, predictions: examples.map { _ in [majority] })
    case .tagging:
        let key = { (word: String) in lowercase ? word.lowercased() : word }
        var byWord: [String: [Int: Int]] = [:], overall: [Int: Int] = [:]
        for example in train {
            for (word, tag) in zip(example.words, example.tags) {
                byWord[key(word), default: [:]][tag, default: 0] += 1
                overall[tag, default: 0] += 1
            }
        }
        let (table, fallback) = (byWord.mapValues(mostFrequent), mostFrequent(overall))
        return scores(spec, examples: examples, predictions: examples.map { $0.words.map { table[key($0)] ?? fallback } })
    }
}
