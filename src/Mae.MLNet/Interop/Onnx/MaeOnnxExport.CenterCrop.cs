using System.Globalization;
using Onnx;

namespace Mae.MLNet.Interop.Onnx;

public static partial class MaeOnnxExport
{
    /// <summary>A weightless per-row graph that takes the <paramref name="outputSize"/>² window at
    /// (<paramref name="offset"/>, <paramref name="offset"/>) of a flat CHW image of <paramref name="inputSize"/>²
    /// (<c>[C·T·T]</c> → <c>[C·S·S]</c>): torchvision's <c>CenterCrop</c> on a square image when the offset is its
    /// (<c>MaeImageInputOptions.CenterCropOffset</c>). ML.NET has no crop that does not scale, so
    /// <see cref="Microsoft.ML.MaeCatalog.MaeEvaluationPixels"/> runs this graph after ExtractPixels.</summary>
    internal static ModelProto BuildCenterCrop(string inputName, string outputName, int channels, int inputSize, int outputSize, long offset)
    {
        if (channels < 1) throw new ArgumentOutOfRangeException(nameof(channels), channels, $"channels must be ≥ 1; got {channels}.");
        if (outputSize < 1 || inputSize < outputSize)
            throw new ArgumentOutOfRangeException(nameof(inputSize), inputSize,
                $"A centre crop takes an output size in [1, input size]; got {outputSize} from {inputSize}.");
        if (offset < 0 || offset > inputSize - outputSize)
            throw new ArgumentOutOfRangeException(nameof(offset), offset, $"The window must lie inside the image: offset in [0, {inputSize - outputSize}]; got {offset}.");
        long c = channels, t = inputSize, s = outputSize, o = offset;
        var g = new OnnxGraphBuilder("center_crop");
        string input = g.ExactName(inputName);
        g.AddInput(input, c * t * t);
        string image = g.Node("Reshape", new[] { input, g.Int64s("image_shape", c, t, t) }, g.UniqueName("image"));
        string crop = g.Node("Slice", new[] { image, g.Int64s("starts", o, o), g.Int64s("ends", o + s, o + s), g.Int64s("axes", 1, 2) },
            g.UniqueName("cropped"));
        g.Node("Reshape", new[] { crop, g.Int64s("row_shape", c * s * s) }, g.ExactName(outputName));
        g.AddOutput(outputName, c * s * s);
        return WithMetadata(g, $"Centre crop {outputSize}×{outputSize} of a {inputSize}×{inputSize} CHW image",
            new[] { ("mae.center_crop", string.Create(CultureInfo.InvariantCulture, $"{inputSize}->{outputSize}")) });
    }
}
