using Mae.MLNet.Input;
using Mae.MLNet.Interop.Onnx;
using Microsoft.ML;
using Microsoft.ML.Transforms.Image;

namespace Mae.MLNet;

/// <summary>
/// The reference's evaluation transform (<c>build_transform(is_train=False)</c>: the shorter side resized to
/// int(S / crop_pct), the centre S×S kept) made of ML.NET's own transforms, so that a model zip holding it scores
/// without Mae.MLNet: LoadImages → ResizeImages(T, T, IsoCrop, centre) → [ConvertToGrayscale] → ExtractPixels (CHW,
/// [0, 1]) → the centre crop as a weightless ONNX graph (ML.NET has no crop that does not scale) → the temporaries
/// dropped. ResizeImages' IsoCrop keeps the centre T×T of the shorter side's resize, and the centre S×S of that is the
/// reference's crop (on a non-square image the two roundings may put the longer side's window one pixel apart).
/// ML.NET resamples with SkiaSharp, not PIL's bicubic: the pixels are close to the library's file source, not equal.
/// </summary>
internal static class EvaluationPixels
{
    public static IEstimator<ITransformer> Create(TransformsCatalog catalog, string outputColumnName, string inputColumnName, int imageSize,
        int channels, string imageFolder)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentException.ThrowIfNullOrWhiteSpace(outputColumnName);
        ArgumentException.ThrowIfNullOrWhiteSpace(inputColumnName);
        ArgumentNullException.ThrowIfNull(imageFolder);
        if (imageSize is < 1 or > MaxImageSize)
            throw new ArgumentOutOfRangeException(nameof(imageSize), imageSize, $"imageSize must be in [1, {MaxImageSize}] pixels; got {imageSize}.");
        if (channels is not (1 or 3))
            throw new ArgumentOutOfRangeException(nameof(channels), channels, $"Image files decode to 1 (grey) or 3 (RGB) channels; got {channels}.");
        if (outputColumnName == inputColumnName)
            throw new ArgumentException($"The pixel column must differ from the path column; both are '{inputColumnName}'.", nameof(outputColumnName));

        int resized = MaeImageInputOptions.EvalResizeSize(imageSize);
        string image = outputColumnName + "__mae_image", full = resized == imageSize ? outputColumnName : outputColumnName + "__mae_resized";
        IEstimator<ITransformer> chain = catalog.LoadImages(image, imageFolder, inputColumnName)
            .Append(catalog.ResizeImages(image, resized, resized, resizing: ImageResizingEstimator.ResizingKind.IsoCrop,
                                         cropAnchor: ImageResizingEstimator.Anchor.Center));
        if (channels == 1) chain = chain.Append(catalog.ConvertToGrayscale(image));
        chain = chain.Append(catalog.ExtractPixels(full, image, interleavePixelColors: false, scaleImage: 1f / 255,
            colorsToExtract: channels == 1 ? ImagePixelExtractingEstimator.ColorBits.Red : ImagePixelExtractingEstimator.ColorBits.Rgb));
        if (full == outputColumnName) return chain.Append(catalog.DropColumns(image));
        // With the digest every graph we write carries, so that a sealed zip verifies it (MaeModelZip).
        var crop = new MemoryStream();
        OnnxDigest.Write(MaeOnnxExport.BuildCenterCrop(full, outputColumnName, channels, resized, imageSize,
                                                   MaeImageInputOptions.CenterCropOffset(resized, imageSize)), crop);
        crop.Position = 0;
        return chain.Append(catalog.ApplyOnnxModel(new[] { outputColumnName }, new[] { full }, crop,
                                                   shapeDictionary: null, gpuDeviceId: null, fallbackToCpu: false, recursionLimit: 100))
            .Append(catalog.DropColumns(image, full));
    }

    /// <summary>A side larger than any model the library makes needs, and small enough that T·T·C floats fit a vector.</summary>
    const int MaxImageSize = 8192;
}
