import Segmentation

extension ViewNetworks {
  /// The smallest number of voxels along every axis of a volume the three networks accept:
  /// each view's slices span two of the three axes, and a U-Net needs ``ModelArchitecture/
  /// minimumInputSide`` pixels on each side of its input.
  public var minimumVolumeSide: Int {
    networks.map(\.architecture.minimumInputSide).max() ?? 1
  }

  /// Refuses a volume thinner than ``minimumVolumeSide`` along some axis (a one-slice NIfTI).
  ///
  /// - Throws: ``MedicalError/volumeTooSmall(path:shape:minimum:networks:)`` naming `path`.
  public func check(volumeShape shape: [Int], path: String) throws(MedicalError) {
    let minimum = minimumVolumeSide
    guard shape.allSatisfy({ $0 >= minimum }) else {
      throw .volumeTooSmall(
        path: path, shape: shape, minimum: minimum,
        networks: "the view networks (\(networks[0].architecture.summary))")
    }
  }
}
