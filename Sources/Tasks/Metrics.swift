/// Scores of predictions against gold labels, by name.
public typealias Scores = [String: Double]

public enum Metrics {
    /// Accuracy and macro-F1 (over every label seen in gold or predictions, as scikit-learn).
    public static func classification(gold: [Int], predicted: [Int]) -> Scores {
        precondition(gold.count == predicted.count, "gold and predicted differ in length")
        guard !gold.isEmpty else { return ["accuracy": 0, "macro_f1": 0] }
        let correct = zip(gold, predicted).filter { $0 == $1 }.count
        let labels = Set(gold).union(predicted)
        let f1s = labels.map { label -> Double in
            let tp = Double(zip(gold, predicted).filter { $0 == label && $1 == label }.count)
            let fp = Double(zip(gold, predicted).filter { $0 != label && $1 == label }.count)
            let fn = Double(zip(gold, predicted).filter { $0 == label && $1 != label }.count)
            return tp == 0 ? 0 : 2 * tp / (2 * tp + fp + fn)
        }
        return ["accuracy": Double(correct) / Double(gold.count), "macro_f1": f1s.reduce(0, +) / Double(f1s.count)]
    }

    /// Token accuracy over every word of every sentence.
    public static func tokenAccuracy(gold: [[Int]], predicted: [[Int]]) -> Double {
        let pairs = zip(gold, predicted).flatMap { zip($0, $1) }
        return pairs.isEmpty ? 0 : Double(pairs.filter { $0 == $1 }.count) / Double(pairs.count)
    }

    /// Entity-level micro precision, recall and F1 over BIO spans, as seqeval computes them
    /// (default mode: an I- tag that does not continue an entity of its type starts one).
    public static func entities(gold: [[String]], predicted: [[String]]) -> Scores {
        var goldSpans = Set<Span>(), predictedSpans = Set<Span>()
        for (sentence, (g, p)) in zip(gold, predicted).enumerated() {
            goldSpans.formUnion(spans(g, sentence: sentence))
            predictedSpans.formUnion(spans(p, sentence: sentence))
        }
        let correct = Double(goldSpans.intersection(predictedSpans).count)
        let precision = predictedSpans.isEmpty ? 0 : correct / Double(predictedSpans.count)
        let recall = goldSpans.isEmpty ? 0 : correct / Double(goldSpans.count)
        let f1 = precision + recall == 0 ? 0 : 2 * precision * recall / (precision + recall)
        return ["entity_precision": precision, "entity_recall": recall, "entity_f1": f1]
    }

    struct Span: Hashable {
        let sentence: Int, start: Int, end: Int, type: String
    }

    /// The entities of one BIO sequence: [start, end) and type.
    static func spans(_ tags: [String], sentence: Int) -> [Span] {
        var result: [Span] = []
        var start: Int?, type = ""
        func close(_ end: Int) {
            if let s = start { result.append(Span(sentence: sentence, start: s, end: end, type: type)) }
            start = nil
        }
        for (i, tag) in tags.enumerated() {
            let (prefix, tagType) = split(tag)
            switch prefix {
            case "B", "S":
                close(i); start = i; type = tagType
            case "I", "E":
                if start == nil || type != tagType { close(i); start = i; type = tagType }
            default:
                close(i)
            }
            if prefix == "S" || prefix == "E" { close(i + 1) }
        }
        close(tags.count)
        return result
    }

    private static func split(_ tag: String) -> (String, String) {
        guard tag != "O", let dash = tag.firstIndex(where: { $0 == "-" || $0 == "_" }) else { return ("O", "") }
        return (String(tag[..<dash]), String(tag[tag.index(after: dash)...]))
    }
}
