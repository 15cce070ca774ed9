import ArgumentParser
import Model
import Tasks

struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Tokenize lines of standard input; write one JSON object a line with input_ids and token_type_ids.")

    @OptionGroup var model: ModelOptions

    @Flag(help: "Each line holds a sentence pair, separated by a tab.")
    var pair = false

    @Option(help: "Truncate to this many tokens, [CLS] and [SEP] included.")
    var maxLength = 512

    func validate() throws {
        guard maxLength >= 2 else { throw ValidationError("--max-length must be at least 2 ([CLS] and [SEP])") }
    }

    func run() throws {
        let tokenizer = try BertTokenizer(folder: model.folder)
        for (index, line) in try TextFile.standardInputLines().enumerated() {
            var second: String?
            var first = String(line)
            if pair {
                let parts = line.split(separator: "\t", maxSplits: 1, omittingEmptySubsequences: false)
                guard parts.count == 2 else { throw InputError("standard input", "line \(index + 1): --pair needs two texts separated by a tab") }
                first = String(parts[0])
                second = String(parts[1])
            }
            let encoding = tokenizer.encode(first, pair: second, maxLength: maxLength)
            print("{\"input_ids\":\(jsonArray(encoding.inputIds)),\"token_type_ids\":\(jsonArray(encoding.tokenTypeIds))}")
        }
    }
}


