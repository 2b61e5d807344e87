using Mae.MLNet.FineTuning;
using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace Mae.MLNet;

/// <summary>
/// A fine-tuned MAE classifier in an ML.NET pipeline: reads the image column, adds <c>Score</c> and
/// <c>PredictedLabel</c> as ML.NET's multiclass trainers do (<see cref="MaeImageClassifierTransformer"/>). Made by
/// <c>MulticlassClassification.Trainers.MaeFineTune</c>.
/// </summary>
public sealed class MaeClassifierTransformer : MaeImageClassifierTransformer
{
    internal MaeClassifierTransformer(VitClassifier model, PixelNormalization normalization, string inputColumnName,
        string labelColumnName, string scoreColumnName, string predictedLabelColumnName, KeyDataViewType labelType, DataViewSchema.Annotations labelAnnotations,
        int batchSize, MaeDevice device)
        : base(model.Config, normalization, inputColumnName, labelColumnName, scoreColumnName, predictedLabelColumnName, labelType,
               labelAnnotations, model.NumClasses, batchSize, device)
    {
        Model = model;
        runner = new ClassifierRunner(model, device, Normalization);
    }

    readonly ClassifierRunner runner;

    /// <summary>The fine-tuned classifier (official parameter names; <see cref="Interop.MaeWeightFile.Save"/> writes it).</summary>
    public VitClassifier Model { get; }
    public override int NumClasses => Model.NumClasses;
    /// <summary>Losses, validation accuracies and timings of the fine-tuning run.</summary>
    public MaeFineTuneResult? FineTuning { get; internal init; }
    private protected override ITensorFunction Runner => runner;

    /// <summary>This classifier (the same model, not a copy) reading <paramref name="inputColumnName"/> of
    /// <paramref name="inputSchema"/> instead of the column it was trained on: e.g. trained on an image-path column (the
    /// library's file source decodes it, naming or skipping bad files), then saved over ML.NET's LoadImages →
    /// ResizeImages → ExtractPixels pixels, the form a model zip can hold. The column is checked against the model.</summary>
    public MaeClassifierTransformer WithInput(string inputColumnName, DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        ImageColumn.Bind(inputSchema, inputColumnName, Model.Config);
        return new MaeClassifierTransformer(Model, Normalization, inputColumnName, LabelColumnName, ScoreColumnName, PredictedLabelColumnName,
            LabelType, LabelAnnotations, BatchSize, Device)
        { FineTuning = FineTuning, InputSchema = inputSchema, Host = Host };
    }

    /// <summary>The encoder up to the pooled, normalised features as ONNX, the head as ML.NET's multiclass model
    /// (<see cref="FineTunePersistence"/>).</summary>
    private protected override TransformerChain<ITransformer> BuildPersisted(MaeHost host, DataViewSchema inputSchema)
        => FineTunePersistence.Build(host, this, inputSchema);
}
