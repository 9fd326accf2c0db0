import Tensor
import Taxonomy
