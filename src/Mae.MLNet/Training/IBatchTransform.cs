using static TorchSharp.torch;

namespace Mae.MLNet.Training;

/// <summary>A transform applied to a whole image batch [N, C, H, W] on the batch's device.</summary>
public interface IBatchTransform { Tensor Apply(Tensor batch); }
