using Microsoft.ML;
using Microsoft.ML.Data;

namespace Mae.MLNet;

/// <summary>SchemaShape.Column's constructor is internal to ML.NET; the column an estimator announces is taken from
/// ML.NET's own CustomMapping estimator, declared with a SchemaDefinition of the right name, type and size.</summary>
internal static class SchemaShapes
{
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
        var estimator = new MLContext().Transforms.CustomMapping<NoInput, OneVector>((_, _) => { }, contractName: null,
            inputSchemaDefinition: SchemaDefinition.Create(typeof(NoInput)), outputSchemaDefinition: output);
        return estimator.GetOutputSchema(new SchemaShape(Array.Empty<SchemaShape.Column>())).Single(c => c.Name == name);
    }

    public static SchemaShape.Column? Find(SchemaShape shape, string name)
    {
        foreach (var column in shape) if (column.Name == name) return column;
        return null;
    }
}
