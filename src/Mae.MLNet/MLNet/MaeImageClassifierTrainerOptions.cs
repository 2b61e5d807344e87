using Mae.MLNet.Input;
using Mae.MLNet.Model;
using Microsoft.ML;

namespace Mae.MLNet;

/// <summary>The columns every image-classifier trainer of this library reads and writes (as ML.NET's trainers share
/// one input base): <c>MaeFineTune</c> and <c>MaeAttentiveProbe</c> derive their options from it.</summary>
public abstract class MaeImageClassifierTrainerOptions
{
    /// <summary>Key-typed label (e.g. from <c>MapValueToKey</c>), at least 2 key values. Rows whose key is missing (0) are skipped.</summary>
    public string LabelColumnName { get; set; } = "Label";
    /// <summary>CHW Single vector of C·H·W values (<c>ExtractPixels(…, interleavePixelColors: false)</c>), MLImage,
    /// image file paths (text) or encoded image bytes (<c>LoadRawImageBytes</c>). Paths and bytes are decoded by
    /// parallel workers: training crops at random on the original image, validation and scoring resize and
    /// centre-crop (the reference's evaluation transform).</summary>
    public string InputColumnName { get; set; } = "Pixels";
    /// <summary>Workers, prefetch, bad-file policy and limits for path/bytes columns (its Augmentation is replaced
    /// by the recipe's). Null: the defaults.</summary>
    public MaeImageInputOptions? ImageInput { get; set; }
    public string ScoreColumnName { get; set; } = "Score";
    public string PredictedLabelColumnName { get; set; } = "PredictedLabel";
    /// <summary>Rows per forward pass of the returned transformer.</summary>
    public int InferenceBatchSize { get; set; } = 64;

    /// <summary>The checks every classifier trainer makes on construction: the four column names set, the inference
    /// batch size in range.</summary>
    internal void CheckColumns()
    {
        if (string.IsNullOrWhiteSpace(LabelColumnName)) throw new ArgumentException("LabelColumnName must be set.", "options");
        if (string.IsNullOrWhiteSpace(InputColumnName)) throw new ArgumentException("InputColumnName must be set.", "options");
        if (string.IsNullOrWhiteSpace(ScoreColumnName)) throw new ArgumentException("ScoreColumnName must be set.", "options");
        if (string.IsNullOrWhiteSpace(PredictedLabelColumnName)) throw new ArgumentException("PredictedLabelColumnName must be set.", "options");
        MaeInputs.CheckInferenceBatchSize(InferenceBatchSize, nameof(InferenceBatchSize));
    }

    /// <summary>The input columns plus a multiclass trainer's Score and PredictedLabel (the label's key type), after
    /// checking the label (key) and input columns; <paramref name="trainer"/> names the caller in the messages.</summary>
    internal SchemaShape OutputSchema(SchemaShape inputSchema, int numClasses, string trainer)
    {
        if (SchemaShapes.Find(inputSchema, LabelColumnName) is not SchemaShape.Column label)
            throw new ArgumentOutOfRangeException(nameof(inputSchema), $"Label column '{LabelColumnName}' was not found.");
        if (!label.IsKey)
            throw new ArgumentOutOfRangeException(nameof(inputSchema),
                $"Label column '{LabelColumnName}' is {label.Kind} of {label.ItemType}; {trainer} expects a key type (map the labels with MapValueToKey first).");
        if (SchemaShapes.Find(inputSchema, InputColumnName) is not SchemaShape.Column)
            throw new ArgumentOutOfRangeException(nameof(inputSchema), $"Input column '{InputColumnName}' was not found.");
        var score = SchemaShapes.SingleVector(ScoreColumnName, numClasses); // the size is not part of a SchemaShape
        var predicted = SchemaShapes.Copy(inputSchema, LabelColumnName, PredictedLabelColumnName); // the label's key type
        return new SchemaShape(inputSchema.Where(c => c.Name != ScoreColumnName && c.Name != PredictedLabelColumnName).Append(score).Append(predicted));
    }
}
