import Foundation
import Synchronization

/// Notices when the policy file's content changes (polled: a rename-into-place save, an edit in
/// place and a Kubernetes ConfigMap's symlink swap all show up as new content).
final class PolicyFileWatcher: Sendable {
    let path: String
    private let lastContent: Mutex<String?>

    init(path: String) {
        self.path = path
        lastContent = Mutex(try? String(contentsOfFile: path, encoding: .utf8))
    }

    /// Nil when nothing changed; else the new policy, or why it cannot be used.
    func changed() -> Result<SamplingPolicyFile, PolicyFileError>? {
        let content = try? String(contentsOfFile: path, encoding: .utf8)
        let changed = lastContent.withLock { last -> Bool in
            guard content != last else { return false }
            last = content
            return true
        }
        guard changed else { return nil }
        guard let content else {
            return .failure(PolicyFileError(file: path, line: nil, column: nil, field: "", message: "cannot read the file", hint: nil))
        }
        do {
            return .success(try SamplingPolicyFile.parse(content, fileName: path))
        } catch {
            return .failure(error)
        }
    }
}
