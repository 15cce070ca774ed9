import Foundation
import Model
import TestSupport
import XCTest

final class TokenizerTests: XCTestCase {
    private struct Cases: Decodable {
        struct Single: Decodable { let text: String; let input_ids: [Int32]; let tokens: [String] }
        struct Pair: Decodable { let text_a: String; let text_b: String; let input_ids: [Int32]; let token_type_ids: [Int32] }
        let single: [Single]
        let pair: [Pair]
    }

    private func cases() throws -> Cases {
        try JSONDecoder().decode(Cases.self, from: Data(contentsOf: URL(fileURLWithPath: fixture("tokenizer_cases.json"))))
    }

    func testEveryReferenceCaseTokenizesToTheReferenceIds() throws {
        let folder = try pretrainedModelFolder()
        let fromJSON = try BertTokenizer(tokenizerJSON: folder + "/tokenizer.json")
        let fromVocab = try BertTokenizer(vocabText: folder + "/vocab.txt")
        let cases = try cases()
        XCTAssertEqual(cases.single.count, 8)
        for tokenizer in [fromJSON, fromVocab] {
            for c in cases.single {
                XCTAssertEqual(tokenizer.encode(c.text).inputIds, c.input_ids, c.text)
                XCTAssertEqual(tokenizer.encode(c.text).inputIds.map { id in tokenizer.vocabulary.first { $0.value == id }!.key },
                               c.tokens, c.text)
            }
            for c in cases.pair {
                let encoding = tokenizer.encode(c.text_a, pair: c.text_b)
                XCTAssertEqual(encoding.inputIds, c.input_ids, c.text_a)
                XCTAssertEqual(encoding.tokenTypeIds, c.token_type_ids, c.text_a)
            }
        }
    }

    /// Special tokens typed in a text, Unicode whitespace, controls, unassigned and newer code points,
    /// CJK extension edges and random mixes of them: the ids of Hugging Face's tokenizers
    /// (scripts/tokenizer_edge_cases.py wrote them), from tokenizer.json and from vocab.txt alike.
    func testHostileTextsTokenizeAsHuggingFaceDoes() throws {
        struct Case: Decodable { let text: String; let input_ids: [Int32] }
        let cases = try JSONDecoder().decode([Case].self, from: Data(contentsOf: URL(fileURLWithPath: fixture("tokenizer_edge_cases.json"))))
        XCTAssertGreaterThan(cases.count, 300)
        let folder = try pretrainedModelFolder()
        for tokenizer in [try BertTokenizer(tokenizerJSON: folder + "/tokenizer.json"), try BertTokenizer(vocabText: folder + "/vocab.txt")] {
            let differing = cases.filter { tokenizer.encode($0.text, maxLength: 1024).inputIds != $0.input_ids }
            XCTAssertEqual(differing.count, 0, differing.prefix(5).map {
                "\($0.text.unicodeScalars.map { String($0.value, radix: 16) }): \(tokenizer.encode($0.text, maxLength: 1024).inputIds) "
                    + "against \($0.input_ids)"
            }.joined(separator: "; "))
        }
    }

    func testTruncationKeepsSpecialTokensAndTrimsTheLongerSideFirst() throws {
        let tokenizer = try BertTokenizer(tokenizerJSON: try pretrainedModelFolder() + "/tokenizer.json")
        let single = tokenizer.encode("one two three four five six", maxLength: 5)
        XCTAssertEqual(single.inputIds.count, 5)
        XCTAssertEqual(single.inputIds.first, tokenizer.classifierId)
        XCTAssertEqual(single.inputIds.last, tokenizer.separatorId)
        // 6 + 2 pieces into a budget of 10 - 3 = 7: the shorter side keeps both, the longer keeps 5.
        let pair = tokenizer.encode("one two three four five six", pair: "seven eight", maxLength: 10)
        XCTAssertEqual(pair.inputIds.count, 10)
        XCTAssertEqual(pair.tokenTypeIds.filter { $0 == 1 }.count, 3)
        // Both long: the budget of 7 splits 3 / 4, the longer (first) side taking the odd one.
        let both = tokenizer.encode("a b c d e f g h", pair: "i j k l m n o", maxLength: 10)
        XCTAssertEqual(both.tokenTypeIds.filter { $0 == 0 }.count, 2 + 4)
        XCTAssertEqual(both.tokenTypeIds.filter { $0 == 1 }.count, 3 + 1)
    }

    func testBasicTokenizerSplitsPunctuationStripsAccentsAndDropsControls() {
        let basic = BasicTokenizer()
        XCTAssertEqual(basic.words("Héllo,\u{0007}Wörld!\tx"), ["hello", ",", "world", "!", "x"])
        XCTAssertEqual(basic.words("北京"), ["北", "京"])
        XCTAssertEqual(basic.words("$5^"), ["$", "5", "^"])
    }

    func testUnknownAndOverlongWordsBecomeUnk() throws {
        let tokenizer = try BertTokenizer(tokenizerJSON: try pretrainedModelFolder() + "/tokenizer.json")
        XCTAssertEqual(tokenizer.wordPieceIds(String(repeating: "a", count: 101)), [tokenizer.unknownId])
        XCTAssertEqual(tokenizer.wordPieceIds("\u{1F600}"), [tokenizer.unknownId])
    }

    func testEmptyVocabularyIsAnErrorNamingTheFile() throws {
        let folder = try temporaryFolder(self)
        XCTAssertTrue(FileManager.default.createFile(atPath: folder + "/vocab.txt", contents: Data()))
        XCTAssertThrowsError(try BertTokenizer(folder: folder)) { error in
            XCTAssertEqual(error as? InputError, InputError(folder + "/vocab.txt", "empty vocabulary"))
        }
    }
}
