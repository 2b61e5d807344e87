using Mae.MLNet.Interop.Onnx;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace Mae.MLNet;

/// <summary>
/// ML.NET keeps the members an outside transformer needs to write its own state into a model zip internal, so the
/// featurizer saves itself as ML.NET's own transformers: the encoder (with pixel normalisation and pooling) is
/// exported to ONNX and wrapped in an <c>OnnxTransformer</c>, which embeds the ONNX bytes in the zip. An MLImage
/// input first goes through ML.NET's <c>ExtractPixels</c> into a temporary column that is dropped afterwards.
/// <c>mlContext.Model.Load</c> gives those transformers back; they score with ONNX Runtime, no libtorch needed.
/// </summary>
internal static class OnnxPersistence
{
    public static void Save(MaeFeaturizerTransformer transformer, ModelSaveContext ctx)
    {
        var inputSchema = transformer.InputSchema
            ?? throw new InvalidOperationException("This featurizer was not made by Fit, so its input schema is unknown and it cannot be saved.");
        ((ICanSaveModel)BuildOnnxTransformer(transformer, inputSchema)).Save(ctx);
    }

    /// <summary>The fitted ML.NET transformer(s) equivalent to <paramref name="transformer"/> on <paramref name="inputSchema"/>.</summary>
    public static ITransformer BuildOnnxTransformer(MaeFeaturizerTransformer transformer, DataViewSchema inputSchema)
    {
        var options = transformer.Options;
        var config = transformer.Encoder.Config;
        var image = ImageColumn.Bind(inputSchema, options.InputColumnName, config);
        var ml = new MLContext();
        string pixelColumn = image.IsImage ? $"{options.InputColumnName}__mae_pixels" : options.InputColumnName;
        if (pixelColumn == options.OutputColumnName)
            throw new NotSupportedException(
                $"Saving needs the output column ('{options.OutputColumnName}') to differ from the pixel column; choose another output name.");
        var norm = transformer.Normalization;
        var onnx = new MemoryStream();
        MaeOnnxExport.Export(transformer.Encoder, onnx, new MaeOnnxOptions
        {
            InputName = pixelColumn, FeaturesName = options.OutputColumnName, Pooling = options.Pooling,
            PixelScale = image.IsImage ? 1f : norm.Scale, Mean = norm.Mean, Std = norm.Std, PerRow = true,
        });
        onnx.Position = 0;
        IEstimator<ITransformer> scorer = ml.Transforms.ApplyOnnxModel(new[] { options.OutputColumnName }, new[] { pixelColumn }, onnx,
            // PerRow graph: [C·H·W] in, [D] out, so the column keeps the featurizer's type, Vector<Single, D>.
            shapeDictionary: null, gpuDeviceId: null, fallbackToCpu: false, recursionLimit: 100);
        if (image.IsImage)
        {
            if (config.InChannels != 3)
                throw new NotSupportedException(
                    $"Saving a featurizer over an image column is supported for 3-channel models; this one has {config.InChannels}. " +
                    "Put ExtractPixels (and grayscale conversion) before MaeFeaturize instead, so it reads a pixel vector.");
            scorer = ml.Transforms.ExtractPixels(pixelColumn, options.InputColumnName,
                    colorsToExtract: Microsoft.ML.Transforms.Image.ImagePixelExtractingEstimator.ColorBits.Rgb,
                    orderOfExtraction: Microsoft.ML.Transforms.Image.ImagePixelExtractingEstimator.ColorsOrder.ARGB,
                    interleavePixelColors: false, scaleImage: 1f / 255)
                .Append(scorer)
                .Append(ml.Transforms.DropColumns(pixelColumn));
        }
        return scorer.Fit(new EmptyDataView(inputSchema));
    }
}
