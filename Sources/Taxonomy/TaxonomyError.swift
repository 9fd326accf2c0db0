/// Everything that can be wrong with a class set or mapping file.
public enum TaxonomyError: Error, Equatable, CustomStringConvertible {
  case unreadable(file: String, reason: String)

  public var description: String {
    switch self {
    case .unreadable(let file, let reason): "\(file): \(reason)"
    }
  }
}
