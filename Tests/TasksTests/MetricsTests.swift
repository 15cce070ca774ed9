import Tasks
import XCTest

final class MetricsTests: XCTestCase {
    func testAccuracyAndMacroF1MatchHandValues() {
        // gold 0 0 1 1 2, predicted 0 1 1 1 0
        let scores = Metrics.classification(gold: [0, 0, 1, 1, 2], predicted: [0, 1, 1, 1, 0])
        XCTAssertEqual(scores["accuracy"]!, 0.6, accuracy: 1e-12)
        // F1: label 0: tp 1, fp 1, fn 1 → 0.5; label 1: tp 2, fp 1, fn 0 → 0.8; label 2: 0 → macro 1.3 / 3
        XCTAssertEqual(scores["macro_f1"]!, 1.3 / 3, accuracy: 1e-12)
    }

    func testTokenAccuracyCountsEveryWord() {
        XCTAssertEqual(Metrics.tokenAccuracy(gold: [[1, 2, 3], [4]], predicted: [[1, 0, 3], [4]]), 0.75, accuracy: 1e-12)
    }

    func testEntityF1FollowsSeqevalOnEdgeCases() {
        let gold = [["B-PER", "I-PER", "O", "B-LOC"],
                    ["B-ORG", "B-ORG", "O"],          // two adjacent entities
                    ["I-MISC", "I-MISC", "O"]]        // I- without B- starts an entity
        let predicted = [["B-PER", "I-PER", "O", "B-ORG"],   // person right, location typed wrong
                         ["B-ORG", "I-ORG", "O"],            // the two merged into one: both missed, one false
                         ["B-MISC", "I-MISC", "O"]]          // same span as the gold's I- start
        let scores = Metrics.entities(gold: gold, predicted: predicted)
        // gold: PER(0,2) LOC(3,4) ORG(0,1) ORG(1,2) MISC(0,2) = 5; predicted: PER ORG(3,4) ORG(0,2) MISC(0,2) = 4; correct: PER, MISC = 2
        XCTAssertEqual(scores["entity_precision"]!, 2.0 / 4, accuracy: 1e-12)
        XCTAssertEqual(scores["entity_recall"]!, 2.0 / 5, accuracy: 1e-12)
        XCTAssertEqual(scores["entity_f1"]!, 2 * 0.5 * 0.4 / 0.9, accuracy: 1e-12)
    }

    func testAnIInsideAnotherTypeStartsANewEntity() {
        let scores = Metrics.entities(gold: [["B-PER", "I-LOC"]], predicted: [["B-PER", "B-LOC"]])
        XCTAssertEqual(scores["entity_f1"]!, 1, accuracy: 1e-12)
    }
}
