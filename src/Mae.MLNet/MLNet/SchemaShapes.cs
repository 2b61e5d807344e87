using Microsoft.ML;
using Microsoft.ML.Data;

namespace Mae.MLNet;

/// <summary>SchemaShape.Column's constructor is internal to ML.NET; the column an estimator announces is taken from
/// ML.NET's own estimators: CustomMapping declared with a SchemaDefinition of the right name, type and size, or
/// CopyColumns for a column like another.</summary>
internal static class SchemaShapes
{
    // Static schema propagation has no caller's environment (GetOutputSchema receives only a SchemaShape), and these
    // estimators are never fitted, so they log nothing and hold no data: one private context serves them all.
    static readonly MLContext SchemaContext = new(seed: 0);

    sealed class NoInput { }

    sealed class OneVector
    {
        public float[] Value { get; set; } = Array.Empty<float>();
    }

    public static SchemaShape.Column SingleVector(string name, int size)
    {
        var output = SchemaDefinition.Create(typeof(OneVector));
        output[0].ColumnName = name;
        output[0].ColumnType = new VectorDataViewType(NumberDataViewType.Single, size);
        var estimator = SchemaContext.Transforms.CustomMapping<NoInput, OneVector>((_, _) => { }, contractName: null,
            inputSchemaDefinition: SchemaDefinition.Create(typeof(NoInput)), outputSchemaDefinition: output);
        return estimator.GetOutputSchema(new SchemaShape(Array.Empty<SchemaShape.Column>())).Single(c => c.Name == name);
    }

    /// <summary>The column <paramref name="name"/> that a copy of <paramref name="source"/> in <paramref name="inputSchema"/> would be.</summary>
    public static SchemaShape.Column Copy(SchemaShape inputSchema, string source, string name)
        => SchemaContext.Transforms.CopyColumns(name, source).GetOutputSchema(inputSchema).Single(c => c.Name == name);

    public static SchemaShape.Column? Find(SchemaShape shape, string name)
    {
        foreach (var column in shape) if (column.Name == name) return column;
        return null;
    }
}
