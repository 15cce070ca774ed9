import Foundation

/// Token ids and token-type ids of one encoded text or text pair.
public struct Encoding: Equatable, Sendable {
    public var inputIds: [Int32]
    public var tokenTypeIds: [Int32]

    public init(inputIds: [Int32], tokenTypeIds: [Int32]) {
        self.inputIds = inputIds
        self.tokenTypeIds = tokenTypeIds
    }
}

/// BERT's WordPiece tokenizer: the basic pre-tokenizer, greedy longest-match
/// WordPiece with `##` continuations, `[CLS]`/`[SEP]`, and pairs with token types.
public struct BertTokenizer: Sendable {
    public let vocabulary: [String: Int32]
    public let basic: BasicTokenizer
    public let unknownId: Int32, classifierId: Int32, separatorId: Int32, paddingId: Int32
    /// The largest id any token maps to: the embedding table must have a row for it.
    public let largestId: Int32
    /// Tokens matched in the raw text before any normalization, as Hugging Face's added tokens
    /// (`[CLS]` typed in a text is the classifier token, not five characters), longest first.
    public let addedTokens: [(text: String, id: Int32)]
    private let addedTokenStarts: Set<Unicode.Scalar>

    /// The special tokens a `vocab.txt` tokenizer adds, as BertTokenizerFast does.
    public static let specialTokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    /// Words longer than this many characters become `[UNK]`, as in BERT.
    public let maxCharactersPerWord = 100

    /// Builds a tokenizer from a vocabulary; errors name `source` when it is empty
    /// or lacks a special token.
    public init(vocabulary: [String: Int32], basic: BasicTokenizer, source: String,
                addedTokens: [String: Int32]? = nil) throws {
        guard !vocabulary.isEmpty else { throw InputError(source, "empty vocabulary") }
        if let (token, id) = vocabulary.first(where: { $0.value < 0 }) {
            throw InputError(source, "token '\(token)' has the negative id \(id)")
        }
        largestId = vocabulary.values.max()!
        func id(_ token: String) throws -> Int32 {
            guard let id = vocabulary[token] else { throw InputError(source, "vocabulary lacks '\(token)'") }
            return id
        }
        self.vocabulary = vocabulary
        self.basic = basic
        unknownId = try id("[UNK]")
        classifierId = try id("[CLS]")
        separatorId = try id("[SEP]")
        paddingId = try id("[PAD]")
        let added = addedTokens ?? vocabulary.filter { Self.specialTokens.contains($0.key) }
        self.addedTokens = added.filter { !$0.key.isEmpty }.map { ($0.key, $0.value) }
            .sorted { ($0.text.count, $0.text) > ($1.text.count, $1.text) }
        addedTokenStarts = Set(self.addedTokens.compactMap(\.text.unicodeScalars.first))
    }

    /// Loads from a model folder: `tokenizer.json` when present, else `vocab.txt`
    /// (lower-casing then read from `tokenizer_config.json`, default on).
    public init(folder: String) throws {
        let tokenizerJSON = (folder as NSString).appendingPathComponent("tokenizer.json")
        let vocabText = (folder as NSString).appendingPathComponent("vocab.txt")
        if FileManager.default.fileExists(atPath: tokenizerJSON) {
            try self.init(tokenizerJSON: tokenizerJSON)
        } else if FileManager.default.fileExists(atPath: vocabText) {
            let config = (folder as NSString).appendingPathComponent("tokenizer_config.json")
            var lowercase = true, stripAccents: Bool? = nil
            if let data = FileManager.default.contents(atPath: config),
               let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] {
                lowercase = json["do_lower_case"] as? Bool ?? true
                stripAccents = json["strip_accents"] as? Bool
            }
            try self.init(vocabText: vocabText, basic: BasicTokenizer(lowercase: lowercase, stripAccents: stripAccents))
        } else {
            throw InputError(folder, "no tokenizer.json or vocab.txt")
        }
    }

    /// Reads a `vocab.txt`: one token a line, the id being the line number from 0.
    public init(vocabText path: String, basic: BasicTokenizer = BasicTokenizer()) throws {
        var vocabulary: [String: Int32] = [:]
        for (index, token) in try TextFile.lines(atPath: path).enumerated() where vocabulary[String(token)] == nil {
            vocabulary[String(token)] = Int32(index)
        }
        try self.init(vocabulary: vocabulary, basic: basic, source: path)
    }

    /// Reads a Hugging Face `tokenizer.json` with a WordPiece model and a BERT normalizer.
    public init(tokenizerJSON path: String) throws {
        let json = try JSONFields(contentsOf: path).json
        guard let model = json["model"] as? [String: Any] else { throw InputError(path, "missing field 'model'") }
        let type = model["type"] as? String ?? "WordPiece"
        guard type == "WordPiece" else { throw InputError(path, "model.type '\(type)' is not WordPiece") }
        guard let vocab = model["vocab"] as? [String: Int] else { throw InputError(path, "missing field 'model.vocab'") }
        let normalizer = json["normalizer"] as? [String: Any] ?? [:]
        let lowercase = normalizer["lowercase"] as? Bool ?? true
        let basic = BasicTokenizer(
            lowercase: lowercase, stripAccents: normalizer["strip_accents"] as? Bool,
            splitChineseCharacters: normalizer["handle_chinese_chars"] as? Bool ?? true)
        if let (token, id) = vocab.first(where: { Int32(exactly: $0.value) == nil }) {
            throw InputError(path, "token '\(token)' has the id \(id), past any embedding table")
        }
        // Added tokens matched before normalization (BERT's special ones); a normalized one would
        // be matched in normalized text, which no BERT checkpoint has.
        var added: [String: Int32] = [:]
        for entry in json["added_tokens"] as? [[String: Any]] ?? [] where !(entry["normalized"] as? Bool ?? false) {
            guard let content = entry["content"] as? String, let id = (entry["id"] as? Int).flatMap(Int32.init(exactly:)),
                  id >= 0 else {
                throw InputError(path, "an entry of added_tokens lacks a content string or an id")
            }
            added[content] = id
        }
        try self.init(vocabulary: vocab.mapValues { Int32($0) }, basic: basic, source: path, addedTokens: added)
    }

    /// WordPiece ids of `text`, without the `[CLS]`/`[SEP]` around it; added tokens in the text
    /// keep their own ids.
    public func pieceIds(_ text: String) -> [Int32] {
        // Most texts hold no added token's first character: no search then.
        guard text.unicodeScalars.contains(where: addedTokenStarts.contains) else {
            return basic.words(text).flatMap(wordPieceIds)
        }
        // Matched on scalars, as tokenizers matches bytes: "[SEP]" followed by a combining mark is
        // one grapheme to Swift's String, and still the separator token to Hugging Face.
        let scalars = Array(text.unicodeScalars)
        var ids: [Int32] = []
        var start = 0, position = 0
        func words(_ range: Range<Int>) -> [Int32] {
            basic.words(String(String.UnicodeScalarView(scalars[range]))).flatMap(wordPieceIds)
        }
        while position < scalars.count {
            // The longest added token starting here (the list is longest first).
            if addedTokenStarts.contains(scalars[position]),
               let token = addedTokens.first(where: { scalars[position...].starts(with: $0.text.unicodeScalars) }) {
                ids += words(start..<position)
                ids.append(token.id)
                position += token.text.unicodeScalars.count
                start = position
            } else {
                position += 1
            }
        }
        return ids + words(start..<scalars.count)
    }

    /// Greedy longest-match WordPiece of one word; a word with no full cover is `[UNK]`.
    public func wordPieceIds(_ word: String) -> [Int32] {
        let characters = Array(word.unicodeScalars)
        if characters.count > maxCharactersPerWord { return [unknownId] }
        var ids: [Int32] = []
        var start = 0
        while start < characters.count {
            var end = characters.count
            var found: Int32?
            while start < end {
                var piece = String(String.UnicodeScalarView(characters[start..<end]))
                if start > 0 { piece = "##" + piece }
                if let id = vocabulary[piece] { found = id; break }
                end -= 1
            }
            guard let id = found else { return [unknownId] }
            ids.append(id)
            start = end
        }
        return ids
    }

    /// `[CLS] text [SEP]`, or `[CLS] text [SEP] pair [SEP]` with token type 1 on the pair's part,
    /// truncated to `maxLength` tokens by trimming the longer side first (longest-first).
    public func encode(_ text: String, pair: String? = nil, maxLength: Int = 512) -> Encoding {
        var first = pieceIds(text)
        var second = pair.map(pieceIds)
        let special = second == nil ? 2 : 3
        let budget = max(maxLength - special, 0)
        if let b = second, first.count + b.count > budget {
            // Longest-first as Hugging Face computes it: the shorter side keeps as much as
            // it can, and when both must shrink they split the budget, the longer side taking the odd one.
            let swapped = first.count > b.count
            var (short, long) = swapped ? (b.count, first.count) : (first.count, b.count)
            long = max(short, budget - short)
            if short + long > budget { short = budget / 2; long = short + budget % 2 }
            let (keepFirst, keepSecond) = swapped ? (long, short) : (short, long)
            first.removeLast(first.count - keepFirst)
            second = Array(b.prefix(keepSecond))
        } else if second == nil && first.count > budget {
            first.removeLast(first.count - budget)
        }
        var ids = [classifierId] + first + [separatorId]
        var types = [Int32](repeating: 0, count: ids.count)
        if let second {
            ids += second + [separatorId]
            types += [Int32](repeating: 1, count: second.count + 1)
        }
        return Encoding(inputIds: ids, tokenTypeIds: types)
    }
}
