using Mae.MLNet.Interop.Onnx;
using Microsoft.ML;
using Microsoft.ML.Data;
using Mae.MLNet.Model;

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
        var host = transformer.Host
            ?? throw new InvalidOperationException("This featurizer was not made through an ML.NET catalog (mlContext.Transforms), so it has no MLContext to save in.");
        ((ICanSaveModel)BuildOnnxTransformer(host.Transforms, transformer, inputSchema)).Save(ctx);
    }

    /// <summary>The fitted ML.NET transformer(s) equivalent to <paramref name="transformer"/> on <paramref name="inputSchema"/>.</summary>
    public static ITransformer BuildOnnxTransformer(TransformsCatalog transforms, MaeFeaturizerTransformer transformer, DataViewSchema inputSchema)
    {
        var options = transformer.Options;
        var norm = transformer.Normalization;
        var convNext = transformer.ConvNext;
        MaeOnnxOptions Onnx(string pixelColumn, float pixelScale) => new()
        {
            InputName = pixelColumn, FeaturesName = options.OutputColumnName, Pooling = options.Pooling, Layers = options.Layers,
            Normalization = norm with { Scale = pixelScale }, PerRow = true,
        };
        return BuildOnnxTransformer(transforms, inputSchema, options.InputColumnName, options.OutputColumnName,
            convNext?.Config.InputGeometry ?? transformer.Encoder.Config,
            (pixelColumn, pixelScale, onnx) =>
            {
                if (convNext is not null) MaeOnnxExport.Export(convNext, onnx, Onnx(pixelColumn, pixelScale));
                else MaeOnnxExport.Export(transformer.Encoder, onnx, Onnx(pixelColumn, pixelScale));
            },
            norm.Scale);
    }

    /// <summary>
    /// ML.NET transformers, made with the caller's <paramref name="transforms"/> catalog, that read <paramref name="inputColumnName"/> (a CHW Single vector, or a 3-channel MLImage
    /// through ExtractPixels into a temporary column) and add <paramref name="outputColumnName"/> from a per-row ONNX
    /// graph. <paramref name="export"/> writes that graph given its input name and the pixel scale it must apply
    /// (<paramref name="vectorScale"/> for vectors; 1 for images, which ExtractPixels already scales to [0, 1]).
    /// </summary>
    public static ITransformer BuildOnnxTransformer(TransformsCatalog transforms, DataViewSchema inputSchema, string inputColumnName, string outputColumnName,
        Model.MaeConfig config, Action<string, float, Stream> export, float vectorScale)
    {
        var image = ImageColumn.Bind(inputSchema, inputColumnName, config);
        if (image.IsEncoded)
            throw new NotSupportedException(
                $"Saving a model that reads image {(image.Kind == ImageColumnKind.Path ? "paths" : "bytes")} from column '{inputColumnName}' is not supported: the saved form is ML.NET's " +
                "OnnxTransformer over pixels. Save a pipeline that reads a pixel column instead (MaeEvaluationPixels: the reference's resize and centre crop in ML.NET's own transforms, or LoadImages → ResizeImages → ExtractPixels), or keep the trained model with its own Save.");
        string pixelColumn = image.IsImage ? $"{inputColumnName}__mae_pixels" : inputColumnName;
        if (pixelColumn == outputColumnName)
            throw new NotSupportedException(
                $"Saving needs the output column ('{outputColumnName}') to differ from the pixel column; choose another output name.");
        if (image.IsImage && config.InChannels != 3)
            throw new NotSupportedException(
                $"Saving a model over an image column is supported for 3-channel models; this one has {config.InChannels}. " +
                "Put ExtractPixels (and grayscale conversion) before the Mae transform instead, so it reads a pixel vector.");
        var onnx = new MemoryStream();
        export(pixelColumn, image.IsImage ? 1f : vectorScale, onnx);
        onnx.Position = 0;
        IEstimator<ITransformer> scorer = transforms.ApplyOnnxModel(new[] { outputColumnName }, new[] { pixelColumn }, onnx,
            // PerRow graph: [C·H·W] in, [D] out, so the column is a Vector<Single, D> of known size.
            shapeDictionary: null, gpuDeviceId: null, fallbackToCpu: false, recursionLimit: 100);
        if (image.IsImage)
        {
            scorer = transforms.ExtractPixels(pixelColumn, inputColumnName,
                    colorsToExtract: Microsoft.ML.Transforms.Image.ImagePixelExtractingEstimator.ColorBits.Rgb,
                    orderOfExtraction: Microsoft.ML.Transforms.Image.ImagePixelExtractingEstimator.ColorsOrder.ARGB,
                    interleavePixelColors: false, scaleImage: 1f / 255)
                .Append(scorer)
                .Append(transforms.DropColumns(pixelColumn));
        }
        return scorer.Fit(new EmptyDataView(inputSchema));
    }
}
