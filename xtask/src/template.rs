//! Reads `template.yaml`: its `AWS::DynamoDB::Table` resources, created as they are on a local
//! server, and the function environment variables that `!Ref` them.

use std::path::Path;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification,
};
use serde_yaml_ng::{Mapping, Value};

use crate::Result;

pub struct Template {
    resources: Mapping,
    globals_env: Mapping,
}

/// A table as the template defines it; `logical_id` is its local name.
#[derive(Debug, Clone)]
pub struct Table {
    pub logical_id: String,
    attributes: Vec<AttributeDefinition>,
    key_schema: Vec<KeySchemaElement>,
    indexes: Vec<GlobalSecondaryIndex>,
    ttl_attribute: Option<String>,
    /// `StreamSpecification.StreamViewType`, when the table has a stream.
    stream: Option<StreamViewType>,
}

impl Template {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let document: Value = serde_yaml_ng::from_str(&text)
            .map_err(|e| format!("{} is not valid YAML: {e}", path.display()))?;
        let resources = document
            .get("Resources")
            .and_then(Value::as_mapping)
            .cloned()
            .ok_or("the template has no Resources")?;
        let globals_env = document
            .get("Globals")
            .and_then(|g| g.get("Function"))
            .and_then(|f| f.get("Environment"))
            .and_then(|e| e.get("Variables"))
            .and_then(Value::as_mapping)
            .cloned()
            .unwrap_or_default();
        Ok(Self {
            resources,
            globals_env,
        })
    }

    pub fn tables(&self) -> Result<Vec<Table>> {
        self.resources
            .iter()
            .filter(|(_, resource)| {
                resource.get("Type").and_then(Value::as_str) == Some("AWS::DynamoDB::Table")
            })
            .map(|(id, resource)| {
                let id = id.as_str().ok_or("a resource id is not a string")?;
                let properties = resource
                    .get("Properties")
                    .ok_or_else(|| format!("{id} has no Properties"))?;
                Table::from_properties(id, properties)
                    .map_err(|e| format!("table {id}: {e}").into())
            })
            .collect()
    }

    /// Creates every table of the template that is missing, each named by its logical id.
    pub async fn create_tables(&self, client: &Client) -> Result<()> {
        for table in self.tables()? {
            table.create(client, &table.logical_id).await?;
        }
        Ok(())
    }

    /// The variables the template sets to `!Ref <table>` for `function` (its logical id),
    /// from Globals and from the function itself, as `(variable, table logical id)`.
    pub fn table_variables(&self, function: &str) -> Vec<(String, String)> {
        let own = self
            .resources
            .get(function)
            .and_then(|f| f.get("Properties"))
            .and_then(|p| p.get("Environment"))
            .and_then(|e| e.get("Variables"))
            .and_then(Value::as_mapping);
        let tables: Vec<String> = self
            .tables()
            .unwrap_or_default()
            .into_iter()
            .map(|t| t.logical_id)
            .collect();
        self.globals_env
            .iter()
            .chain(own.into_iter().flatten())
            .filter_map(|(name, value)| {
                let Value::Tagged(tagged) = value else {
                    return None;
                };
                let target = tagged.value.as_str()?;
                (tagged.tag == "Ref" && tables.iter().any(|t| t == target))
                    .then(|| Some((name.as_str()?.to_owned(), target.to_owned())))?
            })
            .collect()
    }

    /// The logical ids of the functions whose `Metadata.BuildProperties.Binary` is `binary`.
    pub fn function_for_binary(&self, binary: &str) -> Option<String> {
        self.resources.iter().find_map(|(id, resource)| {
            let built = resource
                .get("Metadata")?
                .get("BuildProperties")?
                .get("Binary")?
                .as_str()?;
            (built == binary).then(|| id.as_str().map(str::to_owned))?
        })
    }
}

impl Table {
    fn from_properties(id: &str, properties: &Value) -> Result<Self> {
        let attributes = list(properties, "AttributeDefinitions")?
            .iter()
            .map(|a| {
                let kind = match text(a, "AttributeType")? {
                    "S" => ScalarAttributeType::S,
                    "N" => ScalarAttributeType::N,
                    "B" => ScalarAttributeType::B,
                    other => return Err(format!("unknown AttributeType {other}").into()),
                };
                Ok(AttributeDefinition::builder()
                    .attribute_name(text(a, "AttributeName")?)
                    .attribute_type(kind)
                    .build()?)
            })
            .collect::<Result<Vec<_>>>()?;
        let indexes = match properties.get("GlobalSecondaryIndexes") {
            None => Vec::new(),
            Some(_) => list(properties, "GlobalSecondaryIndexes")?
                .iter()
                .map(|index| {
                    let projection = index
                        .get("Projection")
                        .ok_or("an index has no Projection")?;
                    let kind = ProjectionType::from(text(projection, "ProjectionType")?);
                    let non_key = projection
                        .get("NonKeyAttributes")
                        .and_then(Value::as_sequence)
                        .map(|names| {
                            names
                                .iter()
                                .filter_map(Value::as_str)
                                .map(str::to_owned)
                                .collect()
                        });
                    Ok(GlobalSecondaryIndex::builder()
                        .index_name(text(index, "IndexName")?)
                        .set_key_schema(Some(key_schema(index)?))
                        .projection(
                            Projection::builder()
                                .projection_type(kind)
                                .set_non_key_attributes(non_key)
                                .build(),
                        )
                        .build()?)
                })
                .collect::<Result<Vec<_>>>()?,
        };
        let ttl_attribute = properties
            .get("TimeToLiveSpecification")
            .filter(|ttl| ttl.get("Enabled").and_then(Value::as_bool) == Some(true))
            .map(|ttl| text(ttl, "AttributeName").map(str::to_owned))
            .transpose()?;
        let stream = properties
            .get("StreamSpecification")
            .map(|spec| text(spec, "StreamViewType").map(StreamViewType::from))
            .transpose()?;
        Ok(Self {
            logical_id: id.to_owned(),
            attributes,
            key_schema: key_schema(properties)?,
            indexes,
            ttl_attribute,
            stream,
        })
    }

    /// Creates the table under `name` unless a table of that name exists, and turns on its TTL.
    /// A table made before the template gave it a stream gets one.
    pub async fn create(&self, client: &Client, name: &str) -> Result<()> {
        let stream = self
            .stream
            .clone()
            .map(|view| {
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(view)
                    .build()
            })
            .transpose()?;
        let created = client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .set_attribute_definitions(Some(self.attributes.clone()))
            .set_key_schema(Some(self.key_schema.clone()))
            .set_global_secondary_indexes((!self.indexes.is_empty()).then(|| self.indexes.clone()))
            .set_stream_specification(stream.clone())
            .send()
            .await;
        match created {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_in_use_exception()) =>
            {
                return add_stream(client, name, stream).await;
            }
            Err(e) => {
                return Err(format!(
                    "cannot create table {name}: {}",
                    aws_sdk_dynamodb::error::DisplayErrorContext(e)
                )
                .into());
            }
        }
        if let Some(attribute) = &self.ttl_attribute {
            let spec = TimeToLiveSpecification::builder()
                .attribute_name(attribute)
                .enabled(true)
                .build()?;
            client
                .update_time_to_live()
                .table_name(name)
                .time_to_live_specification(spec)
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "cannot enable TTL on {name}: {}",
                        aws_sdk_dynamodb::error::DisplayErrorContext(e)
                    )
                })?;
        }
        Ok(())
    }
}

/// Turns on `stream` for the existing table `name` unless it has a stream already.
async fn add_stream(
    client: &Client,
    name: &str,
    stream: Option<StreamSpecification>,
) -> Result<()> {
    let Some(stream) = stream else {
        return Ok(());
    };
    let described = client.describe_table().table_name(name).send().await?;
    let streaming = described
        .table()
        .and_then(|t| t.stream_specification())
        .is_some_and(|s| s.stream_enabled());
    if !streaming {
        client
            .update_table()
            .table_name(name)
            .stream_specification(stream)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "cannot turn on the stream of {name}: {}",
                    aws_sdk_dynamodb::error::DisplayErrorContext(e)
                )
            })?;
    }
    Ok(())
}

fn key_schema(value: &Value) -> Result<Vec<KeySchemaElement>> {
    list(value, "KeySchema")?
        .iter()
        .map(|k| {
            Ok(KeySchemaElement::builder()
                .attribute_name(text(k, "AttributeName")?)
                .key_type(KeyType::from(text(k, "KeyType")?))
                .build()?)
        })
        .collect()
}

fn list<'a>(value: &'a Value, key: &str) -> Result<&'a Vec<Value>> {
    value
        .get(key)
        .and_then(Value::as_sequence)
        .ok_or_else(|| format!("{key} is missing or not a list").into())
}

fn text<'a>(value: &'a Value, key: &str) -> Result<&'a str> {
    value
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{key} is missing or not a string").into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_project_template() {
        let template =
            Template::load(&crate::workspace_root().join("template.yaml")).expect("loads");
        let tables = template.tables().expect("tables");
        let names: Vec<&str> = tables.iter().map(|t| t.logical_id.as_str()).collect();
        assert_eq!(names, ["UsersTable", "IdempotencyTable"]);
        assert_eq!(tables[0].indexes.len(), 1);
        assert_eq!(tables[1].ttl_attribute.as_deref(), Some("expires_at"));
        assert_eq!(tables[0].stream, Some(StreamViewType::NewAndOldImages));
        assert_eq!(tables[1].stream, None);
        let function = template
            .function_for_binary("list-users")
            .expect("list-users is built");
        assert_eq!(
            template.table_variables(&function),
            [
                ("USERS_TABLE".into(), "UsersTable".into()),
                ("IDEMPOTENCY_TABLE".into(), "IdempotencyTable".into())
            ]
        );
    }
}
