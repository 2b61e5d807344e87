using System.Reflection;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using Microsoft.ML.Trainers;

namespace Mae.MLNet;

/// <summary>
/// A linear softmax head as ML.NET's own multiclass model: <c>MulticlassPredictionTransformer</c> over
/// <c>MaximumEntropyModelParameters</c> (the model <c>LbfgsMaximumEntropy</c> trains), holding given weights.
/// Score = softmax(W·x + b), PredictedLabel = its argmax as the training label's key type, exactly what a
/// fine-tuned MAE's head computes on its pooled features. ML.NET saves and loads it natively.
/// <para>ML.NET keeps the constructors of both types internal (trainers are the only public way to make them), so
/// they are reached by reflection; the signatures are those of Microsoft.ML 5.0.1, the version this package
/// pins, and a Microsoft.ML without them gives a <see cref="NotSupportedException"/>, never a wrong model.</para>
/// </summary>
internal static class MaximumEntropyHead
{
    const BindingFlags Instance = BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic;

    /// <param name="env">The ML.NET environment (an MLContext).</param>
    /// <param name="weights">[classes][features] (torch's <c>Linear.weight</c> layout).</param>
    /// <param name="bias">[classes].</param>
    /// <param name="classNames">Names of the classes in key order, or null.</param>
    /// <param name="trainSchema">Schema of the rows the head reads: holds <paramref name="featureColumn"/> (Single
    /// vector of the features' width) and, for the key values of PredictedLabel, <paramref name="labelColumn"/>.</param>
    /// <param name="featureColumn">The features the head reads.</param>
    /// <param name="labelColumn">The training label (key type; its key values become PredictedLabel's).</param>
    /// <param name="scoreColumn">Name of the probabilities column.</param>
    /// <param name="predictedLabelColumn">Name of the predicted key column.</param>
    public static ITransformer Create(IHostEnvironment env, float[][] weights, float[] bias, string[]? classNames,
        DataViewSchema trainSchema, string featureColumn, string labelColumn, string scoreColumn, string predictedLabelColumn)
    {
        int classes = weights.Length, features = weights[0].Length;
        if (bias.Length != classes || weights.Any(w => w.Length != features))
            throw new ArgumentException($"Expected {classes} weight rows of {features} values and {classes} biases.");
        if (trainSchema.GetColumnOrNull(featureColumn) is not { Type: VectorDataViewType { ItemType: NumberDataViewType, Size: var width } }
            || width != features)
            throw new ArgumentException($"Column '{featureColumn}' must be a Single vector of {features} values.");

        var parametersType = typeof(MaximumEntropyModelParameters);
        var transformerType = typeof(MulticlassPredictionTransformer<MaximumEntropyModelParameters>);
        var parametersCtor = parametersType.GetConstructor(Instance, null,
            new[] { typeof(IHostEnvironment), typeof(VBuffer<float>[]), typeof(float[]), typeof(int), typeof(int), typeof(string[]), typeof(ModelStatisticsBase) }, null);
        var transformerCtor = transformerType.GetConstructor(Instance, null,
            new[] { typeof(IHostEnvironment), parametersType, typeof(DataViewSchema), typeof(string), typeof(string), typeof(string), typeof(string) }, null);
        if (parametersCtor is null || transformerCtor is null)
            throw new NotSupportedException(
                $"This Microsoft.ML ({parametersType.Assembly.GetName().Version}) lacks the constructors of MaximumEntropyModelParameters / " +
                "MulticlassPredictionTransformer that Mae.MLNet uses to write a fine-tuned head into a model zip (Microsoft.ML 5.0.1 has them). " +
                "Use the Microsoft.ML version Mae.MLNet references, or save with MaeWeightFile.Save / MaeOnnxExport.Export.");

        var rows = weights.Select(w => new VBuffer<float>(features, (float[])w.Clone())).ToArray();
        try
        {
            object parameters = parametersCtor.Invoke(new object?[] { env, rows, (float[])bias.Clone(), classes, features, classNames, null });
            return (ITransformer)transformerCtor.Invoke(new object[] { env, parameters, trainSchema, featureColumn, labelColumn, scoreColumn, predictedLabelColumn });
        }
        catch (TargetInvocationException e) when (e.InnerException is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e.InnerException).Throw();
            throw; // unreachable
        }
    }
}
