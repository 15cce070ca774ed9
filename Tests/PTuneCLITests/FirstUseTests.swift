import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import TestSupport
import XCTest

/// What a first-time user runs besides `ptune` itself: `scripts/install.sh`, `launch.sh --resume`
/// and `launch.sh --serve`.
final class FirstUseTests: XCTestCase {
    /// The repository the tests come from (Tests/Fixtures lies in it), whatever the build path.
    private var repository: String {
        URL(fileURLWithPath: fixturesFolder).deletingLastPathComponent().deletingLastPathComponent().path
    }

    private var ptune: String { productsFolder.appendingPathComponent("ptune").path }

    func testInstallPutsPTuneOnThePath() throws {
        let prefix = try temporaryFolder(self) + "/prefix"
        let install = try runProcess(repository + "/scripts/install.sh", ["--prefix", prefix, "--binary", ptune],
                                     environment: ["PATH": "/usr/bin:/bin"])
        XCTAssertEqual(install.status, 0, install.standardError)
        XCTAssert(install.standardOutput.contains("export PATH=\"\(prefix)/bin:$PATH\""), install.standardOutput)
        // As typed after the install: `ptune` found on the PATH, from another folder.
        let typed = try runProcess("/usr/bin/env", ["ptune", "params", "--method", "ia3", "--model", try pretrainedModelFolder()],
                                   environment: ["PATH": "\(prefix)/bin:/usr/bin:/bin"])
        XCTAssertEqual(typed.status, 0, typed.standardError)
        XCTAssert(typed.standardOutput.contains("trainable 16898 of"), typed.standardOutput)
        // Installing again replaces the link; a wrong binary is refused.
        XCTAssertEqual(try runProcess(repository + "/scripts/install.sh", ["--prefix", prefix, "--binary", ptune]).status, 0)
        let wrong = try runProcess(repository + "/scripts/install.sh", ["--prefix", prefix, "--binary", prefix + "/none"])
        XCTAssertNotEqual(wrong.status, 0)
        XCTAssert(wrong.standardError.contains("is not an executable"), wrong.standardError)
    }

    /// `./launch.sh --resume` on a finished pipeline keeps every stage and task; without it, the
    /// same `--out` is refused with the hint; `--serve` on it serves its registry until SIGTERM.
    func testLaunchResumeKeepsAFinishedPipelineAndServeServesIt() async throws {
        let folder = try moodTask(self)
        let out = folder + "/pipeline"
        let (repository, ptune) = (repository, ptune)
        let launch = { (extra: [String]) in
            try runProcess(repository + "/launch.sh", ["--debug", "--out", out] + extra + [
                "--", "--model", try pretrainedModelFolder(), "--tasks", folder + "/mood.json", "--pretrain-steps", "2",
                "--pretrain-batch-size", "4", "--prompt-length", "2", "--max-steps", "2", "--batch-size", "4",
                "--eval-every", "2",
            ], environment: ["PTUNE_BINARY": ptune, "PTUNE_THREADS": "1"])
        }
        let first = try launch([])
        XCTAssertEqual(first.status, 0, first.standardError)
        XCTAssert(FileManager.default.fileExists(atPath: out + "/registry/manifest.json"))
        let again = try launch([])
        XCTAssertNotEqual(again.status, 0, "a finished --out is not silently redone")
        XCTAssert(again.standardError.contains("--resume"), again.standardError)
        let resumed = try launch(["--resume"])
        XCTAssertEqual(resumed.status, 0, resumed.standardError)
        XCTAssertFalse(resumed.standardError.contains("step 2/2"), "nothing is trained again: \(resumed.standardError)")
        XCTAssert(resumed.standardOutput.contains("| mood |"), resumed.standardOutput)

        let log = folder + "/serve.log"
        let server = try startProcess(repository + "/launch.sh", ["--serve", "--out", out, "--port", "0", "--precision", "fp32"],
                                      environment: ["PTUNE_BINARY": ptune, "PTUNE_THREADS": "1"], errorPath: log)
        var url: String?
        waitWhileRunning(server) {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            url = text.range(of: #"http://127\.0\.0\.1:[0-9]+"#, options: .regularExpression).map { String(text[$0]) }
            return url != nil
        }
        var request = URLRequest(url: URL(string: try XCTUnwrap(url) + "/v1/predict")!)
        request.httpMethod = "POST"
        request.httpBody = Data(#"{"task": "mood", "text": "a fine day"}"#.utf8)
        let (data, response) = try await URLSession.shared.data(for: request)
        XCTAssertEqual((response as? HTTPURLResponse)?.statusCode, 200, String(decoding: data, as: UTF8.self))
        let answer = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        XCTAssert(["up", "down"].contains(answer["label"] as? String ?? ""), "\(answer)")
        server.terminate()
        server.waitUntilExit()
        XCTAssertEqual(server.terminationStatus, 0, (try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
    }
}
