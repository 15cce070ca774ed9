import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import TestSupport
import XCTest

/// `ptune serve` over loopback with a real HTTP client (URLSession): answers equal to `ptune predict`'s
/// in batches that mix every method and both head kinds, every bad input a 4xx, a full queue 503,
/// and SIGTERM answering what is in flight.
final class ServeTests: XCTestCase {
    /// Task name → fixture adapter: deep prompts (P-tuning v2 on both heads, prefix tuning), LoRA on
    /// both heads, IA3, LoRA training biases (its own copy of the base), P-tuning v1, prompt tuning.
    static let fixtures = [
        "ptv2-classify": "ptv2_seqcls_adapter", "ptv2-tag": "ptv2_tokcls_adapter", "prefix": "prefix_mlp_seqcls_adapter",
        "lora": "lora_seqcls_adapter", "lora-tag": "peft/lora_dense_tagging", "ia3-tag": "peft/ia3_tagging",
        "lora-bias": "peft/lora_bias_all", "ptv1": "ptv1_lstm_seqcls_adapter", "prompt": "peft/ptune_prompt",
    ]
    static let tagging: Set = ["ptv2-tag", "lora-tag", "ia3-tag"]

    private struct Server {
        let process: Process
        let url: String
        let log: String
    }

    /// A registry of the fixtures plus Freeze and full fine-tuning adapters trained for two steps
    /// (the freeze one also named on its own with --adapter): registry folder and adapter folders by task.
    private func makeRegistry() throws -> (registry: String, adapters: [String: String]) {
        let ptune = try ptunePath(), model = try pretrainedModelFolder()
        let work = try temporaryFolder(self), registry = work + "/registry"
        var adapters = Self.fixtures.mapValues { fixture($0) }
        let task = try moodTask(self) + "/mood.json"
        for method in ["freeze", "full"] {
            let run = work + "/" + method
            let result = try runProcess(ptune, ["train", "--task", task, "--model", model, "--method", method, "--max-steps", "2",
                                                "--batch-size", "4", "--precision", "fp32", "--out", run])
            XCTAssertEqual(result.status, 0, result.standardError)
            adapters[method] = run + "/best_adapter"
        }
        var entries: [[String: Any]] = []
        for (name, folder) in adapters.sorted(by: { $0.key < $1.key }) where name != "freeze" {
            try FileManager.default.createDirectory(atPath: "\(registry)/\(name)", withIntermediateDirectories: true)
            var digests: [String: String] = [:]
            for file in ["adapter_config.json", "adapter_model.safetensors", "ptune.json"]
            where FileManager.default.fileExists(atPath: "\(folder)/\(file)") {
                try FileManager.default.copyItem(atPath: "\(folder)/\(file)", toPath: "\(registry)/\(name)/\(file)")
                digests[file] = try sha256("\(registry)/\(name)/\(file)")
            }
            entries.append(["task": name, "adapter": name, "sha256": digests, "primary_metric": "accuracy"])
        }
        let manifest = try JSONSerialization.data(withJSONObject: ["adapters": entries])
        try manifest.write(to: URL(fileURLWithPath: registry + "/manifest.json"))
        return (registry, adapters)
    }

    private func sha256(_ path: String) throws -> String {
        let result = try runProcess("/usr/bin/env", ["sha256sum", path])
        XCTAssertEqual(result.status, 0, result.standardError)
        return String(result.standardOutput.prefix(64))
    }

    /// Starts `ptune serve` on a free port and waits until it listens.
    private func startServer(_ arguments: [String]) throws -> Server {
        let log = try temporaryFolder(self) + "/serve.log"
        let process = try startProcess(try ptunePath(), ["serve", "--model", try pretrainedModelFolder(), "--port", "0",
                                                         "--precision", "fp32"] + arguments, errorPath: log)
        addTeardownBlock { if process.isRunning { process.terminate(); process.waitUntilExit() } }
        var url: String?
        waitWhileRunning(process) {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            url = text.range(of: #"http://127\.0\.0\.1:[0-9]+"#, options: .regularExpression).map { String(text[$0]) }
            return url != nil
        }
        return Server(process: process, url: try XCTUnwrap(url, (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""),
                      log: log)
    }

    private func send(_ server: Server, _ method: String, _ path: String, body: Data? = nil) async throws
        -> (status: Int, body: Data, headers: [AnyHashable: Any]) {
        var request = URLRequest(url: URL(string: server.url + path)!)
        request.httpMethod = method
        request.httpBody = body
        request.timeoutInterval = 120
        if body != nil { request.setValue("application/json", forHTTPHeaderField: "Content-Type") }
        let (data, response) = try await URLSession.shared.data(for: request)
        let http = try XCTUnwrap(response as? HTTPURLResponse)
        return (http.statusCode, data, http.allHeaderFields)
    }

    private func post(_ server: Server, _ object: Any) async throws -> (status: Int, json: [String: Any]) {
        let (status, data, _) = try await send(server, "POST", "/v1/predict", body: try JSONSerialization.data(withJSONObject: object))
        return (status, try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any], String(decoding: data, as: UTF8.self)))
    }

    /// The inputs each task is asked about: texts (with a pair for one), for tagging words and texts.
    private func inputs(for task: String, sentences: [String]) -> [[String: Any]] {
        sentences.enumerated().map { index, sentence in
            if Self.tagging.contains(task) {
                return index % 2 == 0 ? ["tokens": sentence.split(separator: " ").map(String.init)] : ["text": sentence]
            }
            return task == "lora" && index == 1 ? ["text": sentence, "text_pair": "a second text"] : ["text": sentence]
        }
    }

    /// `ptune predict`'s answers to `inputs` with the adapter in `folder`.
    private func predicted(_ folder: String, _ inputs: [[String: Any]]) throws -> [[String: Any]] {
        let path = try temporaryFolder(self) + "/in.jsonl"
        let lines = try inputs.map { String(decoding: try JSONSerialization.data(withJSONObject: $0), as: UTF8.self) }
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        let result = try runProcess(try ptunePath(), ["predict", "--model", try pretrainedModelFolder(), "--adapter", folder,
                                                      "--input", path, "--precision", "fp32"])
        XCTAssertEqual(result.status, 0, result.standardError)
        return try result.standardOutput.split(separator: "\n").map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    /// The value of a Prometheus text line that starts with `name` and a space.
    private func metricValue(_ metrics: String, _ name: String) -> Double? {
        metrics.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ")[1]) }
    }

    /// Same labels, words and truncation; logits within 1e-4.
    private func assertSameAnswer(_ served: [String: Any], _ expected: [String: Any], _ context: String) {
        XCTAssertEqual(Set(served.keys), Set(expected.keys), context)
        for key in ["label", "labels", "tokens", "truncated"] {
            XCTAssertEqual(served[key].map { "\($0)" }, expected[key].map { "\($0)" }, "\(context): \(key)")
        }
        let flat = { (value: Any?) -> [Double] in
            (value as? [Double]) ?? ((value as? [[Double]])?.flatMap { $0 } ?? [])
        }
        for key in ["logits", "token_logits"] where expected[key] != nil {
            let (a, b) = (flat(served[key]), flat(expected[key]))
            XCTAssertEqual(a.count, b.count, "\(context): \(key)")
            XCTAssertLessThan(zip(a, b).map { abs($0 - $1) }.max() ?? 0, 1e-4, "\(context): \(key)")
        }
    }

    func testMixedTaskBatchesAnswerAsPredictDoesAndBadInputIsA4xx() async throws {
        let (registry, adapters) = try makeRegistry()
        let server = try startServer(["--registry", registry, "--adapter", "freeze=" + adapters["freeze"]!,
                                      "--max-wait-ms", "30", "--max-batch", "16", "--max-body-bytes", "65536", "--max-inputs", "8"])
        let sentences = try String(contentsOfFile: fixture("sentences.txt"), encoding: .utf8).split(separator: "\n")
            .map(String.init).prefix(4)
        let tasks = adapters.keys.sorted()
        var expected: [String: [[String: Any]]] = [:]
        for task in tasks { expected[task] = try predicted(adapters[task]!, inputs(for: task, sentences: Array(sentences))) }

        // Every task's inputs at once: one request per input, and requests of several inputs mixing tasks.
        var requests: [(body: [String: Any], answers: [(task: String, index: Int)])] = []
        for task in tasks {
            for (index, input) in inputs(for: task, sentences: Array(sentences)).enumerated() where index < 3 {
                requests.append((input.merging(["task": task]) { $1 }, [(task, index)]))
            }
        }
        for start in stride(from: 0, to: tasks.count, by: 4) {
            let group = tasks[start..<min(start + 4, tasks.count)]
            let members = group.map { task in (task, inputs(for: task, sentences: Array(sentences))[3]) }
            requests.append((["inputs": members.map { $0.1.merging(["task": $0.0]) { $1 } }], group.map { ($0, 3) }))
        }
        let replies = try await withThrowingTaskGroup(of: (Int, Int, [String: Any]).self) { group in
            for (number, request) in requests.enumerated() {
                group.addTask { let reply = try await self.post(server, request.body); return (number, reply.status, reply.json) }
            }
            var replies: [Int: (Int, [String: Any])] = [:]
            for try await (number, status, json) in group { replies[number] = (status, json) }
            return replies
        }
        for (number, request) in requests.enumerated() {
            let (status, json) = try XCTUnwrap(replies[number])
            XCTAssertEqual(status, 200, "\(request.body): \(json)")
            let answers = request.answers.count == 1 && request.body["inputs"] == nil ? [json]
                : (json["outputs"] as? [[String: Any]] ?? [])
            XCTAssertEqual(answers.count, request.answers.count, "\(json)")
            for (answer, (task, index)) in zip(answers, request.answers) {
                assertSameAnswer(answer, expected[task]![index], "\(task) input \(index)")
            }
        }
        let metrics = String(decoding: try await send(server, "GET", "/metrics").body, as: UTF8.self)
        let passes = metricValue(metrics, "ptune_batch_size_count") ?? 0
        XCTAssertGreaterThan(passes, 0, metrics)
        XCTAssertLessThan(passes, Double(requests.count), "requests shared forward passes: \(metrics)")
        XCTAssertEqual(metricValue(metrics, "ptune_batch_duration_seconds_count"), passes, "every pass timed")
        XCTAssertGreaterThan(metricValue(metrics, "ptune_matrix_primitives_total") ?? 0, 0, metrics)

        let tasksReply = try await send(server, "GET", "/v1/tasks")
        let listed = try XCTUnwrap(JSONSerialization.jsonObject(with: tasksReply.body) as? [String: Any])["tasks"] as? [[String: Any]]
        XCTAssertEqual(Set(listed?.compactMap { $0["name"] as? String } ?? []), Set(tasks))
        XCTAssertEqual(listed?.first { $0["name"] as? String == "ptv2-tag" }?["kind"] as? String, "tagging")

        // Bad input: the status and a message naming the problem, and the server goes on.
        let cases: [(body: Data, status: Int, says: String)] = [
            (Data("{\"task\": ".utf8), 400, "not valid JSON"),
            (Data("[1, 2]".utf8), 400, "must be a JSON object"),
            (Data(), 400, "empty"),
            (try JSONSerialization.data(withJSONObject: ["task": "nope", "text": "x"]), 404, "unknown task \"nope\""),
            (try JSONSerialization.data(withJSONObject: ["text": "x"]), 400, "missing field 'task'"),
            (try JSONSerialization.data(withJSONObject: ["task": 3, "text": "x"]), 400, "field 'task' is not a string"),
            (try JSONSerialization.data(withJSONObject: ["task": "lora"]), 400, "missing text field 'text'"),
            (try JSONSerialization.data(withJSONObject: ["task": "lora", "text": 5]), 400, "field 'text' is not a string"),
            (try JSONSerialization.data(withJSONObject: ["task": "lora", "text": "  "]), 400, "field 'text' is empty"),
            (try JSONSerialization.data(withJSONObject: ["task": "lora", "text": "x", "text_pair": 2]), 400, "'text_pair' is not a string"),
            (try JSONSerialization.data(withJSONObject: ["task": "lora", "tokens": ["x"]]), 400, "'tokens' is for tagging"),
            (try JSONSerialization.data(withJSONObject: ["task": "ptv2-tag", "tokens": [1, 2]]), 400, "'tokens' is not a list of strings"),
            (try JSONSerialization.data(withJSONObject: ["task": "ptv2-tag", "tokens": [String]()]), 400, "'tokens' is empty"),
            (try JSONSerialization.data(withJSONObject: ["inputs": "x"]), 400, "'inputs' is not a list"),
            (try JSONSerialization.data(withJSONObject: ["inputs": [1]]), 400, "inputs[0] is not an object"),
            (try JSONSerialization.data(withJSONObject: ["inputs": [["task": "lora", "text": "a"], ["task": "lora"]]]), 400,
             "inputs[1]: missing text field"),
            (try JSONSerialization.data(withJSONObject: ["inputs": Array(repeating: ["task": "lora", "text": "a"], count: 9)]), 413,
             "9 inputs in one request; at most 8"),
            (try JSONSerialization.data(withJSONObject: ["task": "lora", "text": String(repeating: "long ", count: 20_000)]), 413,
             "over 65536 bytes"),
        ]
        for (body, status, says) in cases {
            let reply = try await send(server, "POST", "/v1/predict", body: body)
            let message = (try? JSONSerialization.jsonObject(with: reply.body) as? [String: Any])?["error"] as? String ?? ""
            XCTAssertEqual(reply.status, status, "\(String(decoding: body.prefix(80), as: UTF8.self)): \(message)")
            XCTAssert(message.contains(says), "\(message) should say \(says)")
        }
        let health = try await send(server, "GET", "/health")
        XCTAssertEqual(health.status, 200)
        let after = try await post(server, ["task": "ptv2-tag", "tokens": ["still", "serving"]])
        XCTAssertEqual(after.status, 200, "\(after.json)")
        let counted = String(decoding: try await send(server, "GET", "/metrics").body, as: UTF8.self)
        XCTAssert(counted.contains("ptune_errors_total{endpoint=\"/v1/predict\",status=\"400\"}"), counted)
    }

    func testAFullQueueIs503AndSIGTERMAnswersWhatIsInFlight() async throws {
        let server = try startServer(["--adapter", "ptv2=" + fixture("ptv2_seqcls_adapter"), "--max-queue", "6",
                                      "--max-batch", "64", "--max-wait-ms", "3000"])
        let four: [String: Any] = ["inputs": (0..<4).map { ["task": "ptv2", "text": "sentence \($0)"] }]
        // The first request's four inputs wait 3 s for company; the next four do not fit beside them.
        async let first = post(server, four)
        try await Task.sleep(nanoseconds: 700_000_000)
        let (status, data, headers) = try await send(server, "POST", "/v1/predict", body: try JSONSerialization.data(withJSONObject: four))
        XCTAssertEqual(status, 503, String(decoding: data, as: UTF8.self))
        XCTAssertEqual(headers.first { "\($0.key)".lowercased() == "retry-after" }.map { "\($0.value)" }, "1")
        server.process.terminate()
        let answered = try await first
        XCTAssertEqual(answered.status, 200, "\(answered.json)")
        XCTAssertEqual((answered.json["outputs"] as? [Any])?.count, 4)
        server.process.waitUntilExit()
        XCTAssertEqual(server.process.terminationReason, .exit, (try? String(contentsOfFile: server.log, encoding: .utf8)) ?? "")
        XCTAssertEqual(server.process.terminationStatus, 0, (try? String(contentsOfFile: server.log, encoding: .utf8)) ?? "")
    }
}
